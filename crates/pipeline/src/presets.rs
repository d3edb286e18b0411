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

    /// img2img: an edit recipe's steps and quality, in `format`.
    pub fn from_recipe(recipe: &Recipe, format: Format, limits: Limits) -> Self {
        Self {
            format,
            quality: recipe.quality,
            steps: recipe.steps.clone(),
            limits,
            ..Self::default()
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

    #[test]
    fn a_recipe_preset_keeps_its_steps_and_quality() {
        let recipe = crate::recipe::parse("grayscale, quality 40");
        let o = Options::from_recipe(&recipe, Format::Png, Limits::default());
        assert_eq!(o.format, Format::Png);
        assert_eq!(o.quality, recipe.quality);
        assert_eq!(o.steps, recipe.steps);
    }
}
