//! The corpus images the quality examples measure: the `photo`, `graphic`
//! and `webp` folders under a root, in name order, each with its bytes and
//! its decoded image (files that do not read or decode are passed over).

use std::path::{Path, PathBuf};

use pixpress_pipeline::{stages, Limits};

const FOLDERS: [&str; 3] = ["photo", "graphic", "webp"];

/// One corpus image (not every example reads every field).
#[allow(dead_code)]
pub struct CorpusImage {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub image: image::DynamicImage,
}

/// Every decodable image of the corpus at `root`, read one at a time.
pub fn images(root: &Path) -> impl Iterator<Item = CorpusImage> {
    let mut paths = Vec::new();
    for folder in FOLDERS {
        let Ok(dir) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        let mut names: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        names.sort();
        paths.extend(names.into_iter().filter(|p| p.is_file()));
    }
    paths.into_iter().filter_map(|path| {
        let bytes = std::fs::read(&path).ok()?;
        let image = stages::decode(&bytes, &Limits::default()).ok()?;
        Some(CorpusImage { path, bytes, image })
    })
}
