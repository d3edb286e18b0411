//! The web app end to end: starts the real server on a free loopback port and
//! runs `tests/web/e2e.mjs` against it, which drives headless Chromium through
//! playwright-core (compress three images, Auto format and quality, the error
//! case, two pages in one room, two users chatting, dropped connections) and
//! runs axe-core on every page and state. It runs twice: with auth off, and
//! against a server with `auth.api_keys` and `auth.jwt_secret` set, where
//! every page signs in through Settings. Without Chromium or the node modules
//! this test fails and says how to install them, unless
//! `PIXPRESS_SKIP_BROWSER_TESTS=1`. `PIXPRESS_UPDATE_SCREENSHOTS=1` also
//! refreshes the screenshots in docs/img/ (from the run with auth off).

mod common;

use pixpress::config::Settings;

/// The server the browser tests talk to: limits other than the defaults, so
/// a page that carried its own copy of them (rather than reading `GET /`)
/// would fail.
fn e2e_settings() -> Settings {
    let mut settings = common::test_settings();
    // Rooms: image chunks half the protocol's default size.
    settings.share.chunk_size = 16 * 1024;
    // Chat: pages of five messages, so paging back is exercised.
    settings.chat.default_history_limit = 5;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser() {
    let what = "the web app's browser tests";
    if common::browser::skipped(what) {
        return;
    }
    let server = common::start(e2e_settings()).await;
    let base = common::base_url(&server);
    let update = std::env::var("PIXPRESS_UPDATE_SCREENSHOTS").as_deref() == Ok("1");
    let args: &[&str] = if update { &["--update-docs"] } else { &[] };
    let stdout = common::browser::run(what, "e2e.mjs", &base, args, "checks passed").await;
    server.shutdown().await;
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_signs_in_to_a_server_with_auth_on() {
    let what = "the web app's browser tests with auth on";
    if common::browser::skipped(what) {
        return;
    }
    const API_KEY: &str = "e2e-api-key";
    const JWT_SECRET: &str = "e2e-jwt-secret";
    let mut settings = e2e_settings();
    settings.auth.api_keys = vec![API_KEY.to_owned().into()];
    settings.auth.jwt_secret = Some(JWT_SECRET.to_owned());
    let server = common::start(settings).await;
    let base = common::base_url(&server);
    let key = format!("--api-key={API_KEY}");
    let secret = format!("--jwt-secret={JWT_SECRET}");
    let stdout = common::browser::run(
        what,
        "e2e.mjs",
        &base,
        &[&key, &secret],
        "checks passed (auth on)",
    )
    .await;
    server.shutdown().await;
    println!("{stdout}");
}
