//! The web app end to end: starts the real server on a free loopback port and
//! runs `tests/web/e2e.mjs` against it, which drives headless Chromium through
//! playwright-core (compress three images, the error case, two pages in one
//! room, reconnecting). Without Chromium or the node modules this test fails
//! and says how to install them, unless `PIXPRESS_SKIP_BROWSER_TESTS=1`.
//! `PIXPRESS_UPDATE_SCREENSHOTS=1` also refreshes the screenshots in docs/img/.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

fn chromium_path() -> PathBuf {
    std::env::var_os("PIXPRESS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM))
}

/// What is missing to run the browser tests, each with how to get it.
fn missing_prerequisites(web: &Path) -> Vec<String> {
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
    if !web
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push("playwright-core: npm ci --prefix tests/web".to_owned());
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser() {
    if std::env::var("PIXPRESS_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        println!("skipped: the web app's browser tests (PIXPRESS_SKIP_BROWSER_TESTS=1)");
        return;
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let missing = missing_prerequisites(&web);
    assert!(
        missing.is_empty(),
        "the web app's browser tests need:\n  - {}\nInstall them, or set PIXPRESS_SKIP_BROWSER_TESTS=1 to skip these tests.",
        missing.join("\n  - ")
    );

    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let mut command = Command::new("node");
    command
        .arg(web.join("e2e.mjs"))
        .arg(&base)
        .env("PIXPRESS_CHROMIUM", chromium_path());
    if std::env::var("PIXPRESS_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        command.arg("--update-docs");
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the browser test runner thread")
        .expect("node starts");
    server.shutdown().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser tests failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("checks passed"),
        "the browser test script ended without its summary:\n{stdout}"
    );
    println!("{stdout}");
}
