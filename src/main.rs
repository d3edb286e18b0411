//! `pixpress`: parse arguments, load settings, start the servers, stop on
//! SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pixpress::config::LogFormat;

/// Image compression job queue and real-time image sharing server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file (default: ./config.yaml when present, else built-in defaults).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Allocations from this size up get pages of their own from the system,
/// returned as soon as they are freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_ALLOCATION: libc::c_int = 1 << 20;

/// Upload bodies and decoded pixels are megabytes each and short-lived.
/// glibc maps such buffers on their own at first, but raises its threshold
/// for that after the first ones are freed and then keeps later ones in its
/// heap, which it rarely gives back: 64 concurrent 10 MB uploads of a
/// JPEG left 427 MiB resident once the server was idle again, against 81
/// MiB with the threshold fixed here, and the peak fell from 529 to 431 MiB
/// (docs/reliability.md). A fixed threshold also turns that raising off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers() {
    // SAFETY: mallopt only sets an allocator parameter; it runs first in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return_large_buffers();
    let cli = Cli::parse();
    let settings = match pixpress::config::Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pixpress: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pixpress: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match pixpress::app::start(settings).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("pixpress: {e}");
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Log lines on standard output: `RUST_LOG` filters (default `info`); text
/// is coloured only on a terminal, so `docker logs` shows no escape codes.
fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
