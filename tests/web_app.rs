//! The web app end to end: starts the real server on a free loopback port and
//! runs `tests/web/e2e.mjs` against it, which drives headless Chromium through
//! playwright-core (compress three images, the error case, two pages in one
//! room, reconnecting). Without Chromium or the node modules this test fails
//! and says how to install them, unless `PIXPRESS_SKIP_BROWSER_TESTS=1`.
//! `PIXPRESS_UPDATE_SCREENSHOTS=1` also refreshes the screenshots in docs/img/.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser() {
    let what = "the web app's browser tests";
    if common::browser::skipped(what) {
        return;
    }
    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let update = std::env::var("PIXPRESS_UPDATE_SCREENSHOTS").as_deref() == Ok("1");
    let args: &[&str] = if update { &["--update-docs"] } else { &[] };
    let stdout = common::browser::run(what, "e2e.mjs", &base, args, "checks passed").await;
    server.shutdown().await;
    println!("{stdout}");
}
