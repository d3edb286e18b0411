//! The server binary run as a child process (what a user starts), for
//! tests of signals and of instances that die.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Bound on the wait for a log line; a hang fails the test instead.
const BOUND: Duration = Duration::from_secs(60);

/// The server binary, started with `config` (YAML), and its addresses
/// read from its log.
pub struct Spawned {
    pub child: Child,
    pub http: String,
    pub log: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_server(config: &str) -> Spawned {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pixpress"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = wait_line(&log, "listening http=");
    let http = line
        .split("http=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("http address in the log")
        .to_owned();
    Spawned {
        child,
        http,
        log,
        _dir: dir,
    }
}

/// The next log line containing `needle` (lines before it are dropped).
pub fn wait_line(log: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = log
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

impl Spawned {
    /// Kills the server at once (SIGKILL): nothing of it runs after this.
    pub fn kill(&mut self) {
        self.child.kill().expect("the server is killed");
        self.child.wait().expect("the killed server is reaped");
    }
}
