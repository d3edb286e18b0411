//! Replays the inputs that fuzzing once found failing (tests/fuzz/<target>/)
//! through the function their target drives: each must now be refused
//! cleanly, without a panic.

use std::fs;
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut found: Vec<_> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, fs::read(&p).expect("read a regression input"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn pickle_inputs_found_by_fuzzing_are_refused() {
    let found = inputs("pickle_scan");
    assert!(!found.is_empty(), "tests/fuzz/pickle_scan holds the inputs");
    for (name, data) in found {
        let refused = pixpress::protocols::tcp::decode_request(&data);
        assert!(refused.is_err(), "{name} must be refused, got {refused:?}");
    }
}
