//! A throwaway `redis-server` for the tests that need Redis.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A throwaway `redis-server` on a free port, stopped on drop.
pub struct Redis {
    child: Child,
    pub url: String,
    port: u16,
    args: Vec<String>,
}

impl Redis {
    /// Keeps nothing on disk.
    pub fn start() -> Self {
        Self::start_with(vec!["--save".into(), String::new()])
    }

    /// Keeps its data in `dir`, written through on every change
    /// (`appendfsync always`), so a killed server comes back with it.
    #[allow(dead_code)]
    pub fn start_durable(dir: &Path) -> Self {
        Self::start_with(vec![
            "--save".into(),
            String::new(),
            "--dir".into(),
            dir.display().to_string(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
        ])
    }

    fn start_with(mut args: Vec<String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !args.iter().any(|a| a == "--appendonly") {
            args.extend(["--appendonly".into(), "no".into()]);
        }
        Self {
            child: spawn(port, &args),
            url: format!("redis://127.0.0.1:{port}"),
            port,
            args,
        }
    }

    /// Kills the server at once (SIGKILL): every connection to it breaks
    /// and new ones are refused.
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, with the same settings.
    #[allow(dead_code)]
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.args);
    }
}

/// Starts `redis-server` on `port` and returns once it accepts connections.
fn spawn(port: u16, args: &[String]) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-server runs (install it: apt-get install redis-server)");
    // Ready once it says so: no polling.
    let stdout = child.stdout.take().expect("its output");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("Ready to accept connections"));
    assert!(ready, "redis-server on port {port} did not start");
    // Keep reading its log, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    child
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
