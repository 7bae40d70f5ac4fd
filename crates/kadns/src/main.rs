//! The `kadns` command: parses arguments, sets up logging, runs one command.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A lone first node has nobody to bootstrap from: not worth a warning.
        .with_env_filter(
            EnvFilter::try_from_env("KADNS_LOG")
                .unwrap_or_else(|_| EnvFilter::new("warn,libp2p_kad::behaviour=error")),
        )
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kadns: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
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
