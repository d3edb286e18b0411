//! Runs a browser test script under `tests/web/` (node, playwright-core,
//! headless Chromium) against a running server, for the tests that drive
//! real pages.

use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

pub fn chromium_path() -> PathBuf {
    std::env::var_os("PIXPRESS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM))
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// What is missing to run the browser tests, each with how to get it.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        missing.push("node (Node.js 18 or newer): apt-get install nodejs npm".to_owned());
    }
    let chromium = chromium_path();
    if !chromium.exists() {
        missing.push(format!(
            "Chromium at {}: apt-get install chromium (or set PIXPRESS_CHROMIUM to its path)",
            chromium.display()
        ));
    }
    for module in ["playwright-core", "axe-core"] {
        let manifest = format!("node_modules/{module}/package.json");
        if !web_dir().join(manifest).exists() {
            missing.push(format!("{module}: npm ci --prefix tests/web"));
        }
    }
    missing
}

/// Whether `PIXPRESS_SKIP_BROWSER_TESTS=1` opts out (said on stdout).
pub fn skipped(what: &str) -> bool {
    let skip = std::env::var("PIXPRESS_SKIP_BROWSER_TESTS").as_deref() == Ok("1");
    if skip {
        println!("skipped: {what} (PIXPRESS_SKIP_BROWSER_TESTS=1)");
    }
    skip
}

/// Runs `tests/web/{script} {base} {args...}` and returns its output once
/// it succeeded and printed `summary`. A missing prerequisite fails with
/// how to install it.
pub async fn run(what: &str, script: &str, base: &str, args: &[&str], summary: &str) -> String {
    let missing = missing_prerequisites();
    assert!(
        missing.is_empty(),
        "{what} need:\n  - {}\nInstall them (scripts/setup does), or set PIXPRESS_SKIP_BROWSER_TESTS=1 to skip these tests.",
        missing.join("\n  - ")
    );
    let mut command = Command::new("node");
    command
        .arg(web_dir().join(script))
        .arg(base)
        .args(args)
        .env("PIXPRESS_CHROMIUM", chromium_path());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the browser test runner thread")
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(summary),
        "{what}: the script ended without its summary:\n{stdout}"
    );
    stdout
}
