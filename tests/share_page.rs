//! A page that behaves like the original share app's (SPEC 3.1), in a real
//! browser: starts the real server on a free loopback port and runs
//! `tests/web/share_page.mjs` against it, which drives headless Chromium
//! through playwright-core (presence and the upload switch, the shared
//! textarea, both pages showing a shared image, a late joiner, a leaver).
//! Without Chromium or the node modules this test fails and says how to
//! install them, unless `PIXPRESS_SKIP_BROWSER_TESTS=1`.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_like_the_original_works_in_a_real_browser() {
    let what = "the share page's browser test";
    if common::browser::skipped(what) {
        return;
    }
    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let stdout = common::browser::run(
        what,
        "share_page.mjs",
        &base,
        &[],
        "share page checks passed",
    )
    .await;
    server.shutdown().await;
    println!("{stdout}");
}
