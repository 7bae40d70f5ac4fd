//! The `kadns` command: parses arguments, sets up logging, runs one command.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    logging();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kadns: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr as `KADNS_LOG` says (default: warnings), and keeps the
/// last warnings and errors for `kadns status` whatever `KADNS_LOG` says.
fn logging() {
    // A lone first node has nobody to bootstrap from: not worth a warning.
    const DEFAULT: &str = "warn,libp2p_kad::behaviour=error";
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(
            EnvFilter::try_from_env("KADNS_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT)),
        );
    let recent = kadns::RecentErrors::global()
        .layer()
        .with_filter(EnvFilter::new(DEFAULT));
    tracing_subscriber::registry()
        .with(stderr)
        .with(recent)
        .init();
}

/// The error and its causes on one line, outermost first. Many errors already
/// print their source in their own message; a cause whose text is already on
/// the line is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
