//! The README's examples, run as written against a real server: the curl
//! commands and the Python WebSocket client.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The first fenced block of `lang` after the heading `heading`.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has {heading:?}"))..];
    let fence = format!("```{lang}\n");
    let start = section.find(&fence).expect("a fenced block") + fence.len();
    let end = start + section[start..].find("```").expect("closed block");
    section[start..end].to_owned()
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

#[tokio::test]
async fn the_readme_curl_commands_work_as_written() {
    let server = start(test_settings()).await;
    let script = readme_block("## Compress an image over HTTP", "sh")
        .replace("http://localhost:8080", &base_url(&server));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.jpg"), jpeg(300, 200)).unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || run_in(&dir, "bash", &["-euo", "pipefail", "-c", &script])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\":\"done\""), "{stdout}");
    let png = std::fs::read(dir.path().join("photo.png")).expect("downloaded");
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(decode(&png).width(), 300);
    server.shutdown().await;
}

#[tokio::test]
async fn the_readme_websocket_example_works_as_written() {
    let has_websockets = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_websockets {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with websockets is needed: pip install -r scripts/clients/requirements.txt"
        );
        eprintln!(
            "skipped: python3 -m pip install websockets to run the README's WebSocket example"
        );
        return;
    }
    let server = start(test_settings()).await;
    let script = readme_block("## The same jobs over a WebSocket", "python")
        .replace("ws://localhost:8080", &format!("ws://{}", server.http_addr));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.jpg"), jpeg(120, 90)).unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || run_in(&dir, "python3", &["-c", &script])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let small = std::fs::read(dir.path().join("photo-small.jpg")).expect("written");
    assert!(small.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(decode(&small).height(), 90);
    server.shutdown().await;
}
