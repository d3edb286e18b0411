//! The HTTP API against its own OpenAPI document: schemathesis (from PyPI,
//! installed by `scripts/setup`) generates requests for every operation,
//! bad input included, and checks that no answer is a 5xx and that every
//! answer's status, content type, headers and body match the document.
//! The run is bounded (examples per operation) and seeded, so it repeats.

mod common;

use std::process::Command;

const SCHEMATHESIS: &str = "import sys\nfrom schemathesis.cli import schemathesis\nsys.argv[0] = 'st'\nsys.exit(schemathesis())";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_matches_the_openapi_document() {
    let available = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        available,
        "schemathesis is missing: run scripts/setup, or: python3 -m pip install schemathesis==4.32.5"
    );

    let server = common::start(common::test_settings()).await;
    let base = common::base_url(&server);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-c",
                SCHEMATHESIS,
                "--no-color",
                "--config-file",
                config,
                "run",
            ])
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", "all", "--max-examples", "25", "--seed", "1"])
            .args(["--workers", "2"])
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("schemathesis finished");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "schemathesis found responses that break the API document (report above)"
    );
    assert!(report.contains("passed"), "schemathesis ran no test case");
    server.shutdown().await;
}
