//! Command-line interface: the argument structure and the dispatch.

mod key;
mod present;
mod zone;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kadns: DNS served from a Kademlia DHT, signed by zone keys.
#[derive(Debug, Parser)]
#[command(name = "kadns", version, about, propagate_version = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and inspect zone keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Sign, check and inspect zones.
    #[command(subcommand)]
    Zone(zone::ZoneCommand),
}

/// Runs the command; an `Err` is reported as one line on stderr.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Key(command) => key::run(command),
        Command::Zone(command) => zone::run(command),
    }
}
