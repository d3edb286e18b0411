//! A page that behaves like the original share app's (SPEC 3.1), in a real
//! browser: starts the real server on a free loopback port and runs
//! `tests/web/share_page.mjs` against it, which drives headless Chromium
//! through playwright-core (presence and the upload switch, the shared
//! textarea, both pages showing a shared image, a late joiner, a leaver).
//! Without Chromium or the node modules this test fails and says how to
//! install them, unless `PIXPRESS_SKIP_BROWSER_TESTS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium_path() -> PathBuf {
    std::env::var_os("PIXPRESS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_like_the_original_works_in_a_real_browser() {
    if std::env::var("PIXPRESS_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        println!("skipped: the share page's browser test (PIXPRESS_SKIP_BROWSER_TESTS=1)");
        return;
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let ready = chromium_path().exists()
        && web
            .join("node_modules/playwright-core/package.json")
            .exists();
    assert!(
        ready,
        "the share page's browser test needs node, Chromium ({}) and playwright-core \
         (scripts/setup installs them), or PIXPRESS_SKIP_BROWSER_TESTS=1 to skip it",
        chromium_path().display()
    );

    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let mut command = Command::new("node");
    command
        .arg(web.join("share_page.mjs"))
        .arg(&base)
        .env("PIXPRESS_CHROMIUM", chromium_path());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the browser test runner thread")
        .expect("node starts");
    server.shutdown().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the share page's browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("share page checks passed"),
        "the browser test script ended without its summary:\n{stdout}"
    );
    println!("{stdout}");
}
