//! Option presets for the server's uses, as `Options::default()` is for a
//! plain compression: one place that says what a shared image, a chat
//! image and an img2img result are made of, so no caller builds them by
//! hand. Each preset starts from `Options::default()`, so fields added
//! later keep their defaults.

use crate::{Fit, Format, Limits, Options, Recipe, Step};

/// Which preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Share rooms: WebP, fitted inside a square, under a byte budget.
    Share { max_dimension: u32, max_bytes: u64 },
    /// Chat message images: the same shape as shared images.
    Chat { max_dimension: u32, max_bytes: u64 },
}

impl Options {
    /// The options a preset stands for, under `limits`.
    pub fn from_preset(preset: Preset, limits: Limits) -> Self {
        match preset {
            Preset::Share {
                max_dimension,
                max_bytes,
            }
            | Preset::Chat {
                max_dimension,
                max_bytes,
            } => Self {
                format: Format::Webp,
                steps: vec![Step::Resize {
                    width: Some(max_dimension),
                    height: Some(max_dimension),
                    fit: Fit::Inside,
                }],
                max_bytes: Some(max_bytes),
                limits,
                ..Self::default()
            },
        }
    }

    /// img2img: an edit recipe on top of `defaults`. The recipe's `format`
    /// and `quality` replace the defaults' (the default quality belongs to
    /// the default format: another format gets its own default). A recipe
    /// with a size or crop step says how big the result is; without one,
    /// the result is first fitted inside the defaults' box (never
    /// enlarged), which also lets a JPEG shrink on load.
    pub fn from_recipe(recipe: &Recipe, defaults: RecipeDefaults, limits: Limits) -> Self {
        let sized = recipe
            .steps
            .iter()
            .any(|s| matches!(s, Step::Resize { .. } | Step::Crop { .. }));
        let fit = defaults
            .fit_inside
            .filter(|_| !sized)
            .map(|(width, height)| Step::Resize {
                width: Some(width),
                height: Some(height),
                fit: Fit::Inside,
            });
        let format = recipe.format.unwrap_or(defaults.format);
        let default_quality = (format == defaults.format)
            .then_some(defaults.quality)
            .flatten();
        Self {
            format,
            quality: recipe.quality.or(default_quality),
            steps: fit
                .into_iter()
                .chain(recipe.steps.iter().cloned())
                .collect(),
            limits,
            ..Self::default()
        }
    }
}

/// What an img2img result is when the recipe does not say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeDefaults {
    /// Fit the image inside this box (width, height) unless the recipe
    /// sizes or crops it; `None` keeps the input's size.
    pub fit_inside: Option<(u32, u32)>,
    pub format: Format,
    /// The default format's quality; `None` is that format's own default.
    pub quality: Option<u8>,
}

impl RecipeDefaults {
    /// The original img2img server's answer: a JPEG at quality 85 inside
    /// `width`x`height`.
    pub fn jpeg_inside(width: u32, height: u32) -> Self {
        Self {
            fit_inside: Some((width, height)),
            format: Format::Jpeg,
            quality: Some(85),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_preset_fits_a_box_in_webp_under_a_budget() {
        let o = Options::from_preset(
            Preset::Share {
                max_dimension: 800,
                max_bytes: 1000,
            },
            Limits::default(),
        );
        assert_eq!(o.format, Format::Webp);
        assert_eq!(o.max_bytes, Some(1000));
        assert_eq!(
            o.steps,
            vec![Step::Resize {
                width: Some(800),
                height: Some(800),
                fit: Fit::Inside
            }]
        );
    }

    fn inside(w: u32, h: u32) -> Step {
        Step::Resize {
            width: Some(w),
            height: Some(h),
            fit: Fit::Inside,
        }
    }

    #[test]
    fn a_recipe_without_a_size_gets_the_default_box_first() {
        let recipe = crate::recipe::parse("grayscale, a cat");
        let o = Options::from_recipe(
            &recipe,
            RecipeDefaults::jpeg_inside(512, 512),
            Limits::default(),
        );
        assert_eq!(o.format, Format::Jpeg);
        assert_eq!(o.quality, Some(85));
        assert_eq!(o.steps, vec![inside(512, 512), Step::Grayscale]);
    }

    #[test]
    fn the_recipe_overrides_size_format_and_quality() {
        let defaults = RecipeDefaults::jpeg_inside(512, 512);
        for text in ["width 2048", "resize 100x100", "crop 0,0,10,10"] {
            let recipe = crate::recipe::parse(text);
            let o = Options::from_recipe(&recipe, defaults, Limits::default());
            assert_eq!(o.steps, recipe.steps, "{text}");
        }
        let o = Options::from_recipe(
            &crate::recipe::parse("quality 40"),
            defaults,
            Limits::default(),
        );
        assert_eq!((o.format, o.quality), (Format::Jpeg, Some(40)));
        // Another format takes its own default quality, not JPEG's 85.
        let o = Options::from_recipe(
            &crate::recipe::parse("format png"),
            defaults,
            Limits::default(),
        );
        assert_eq!((o.format, o.quality), (Format::Png, None));
        let o = Options::from_recipe(
            &crate::recipe::parse("format webp quality 60"),
            defaults,
            Limits::default(),
        );
        assert_eq!((o.format, o.quality), (Format::Webp, Some(60)));
    }
}
