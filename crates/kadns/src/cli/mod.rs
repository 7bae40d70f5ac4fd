//! Command-line interface: the argument structure and the dispatch.

mod control;
mod demo;
mod key;
mod resolve;
mod serve;
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
    /// Sign, check, inspect and publish zones.
    #[command(subcommand)]
    Zone(zone::ZoneCommand),
    /// Run a DHT node and the DNS stub that resolv.conf points at.
    Serve(serve::ServeArgs),
    /// Look one name up through the DHT and print the verified records.
    Resolve(resolve::ResolveArgs),
    /// Run a local network with a published demo zone and a stub for dig.
    Demo(demo::DemoArgs),
    /// Show how a running node is doing (through its control socket).
    Status(control::StatusArgs),
    /// Make a running node re-read its configuration (as SIGHUP does).
    Reload(control::ReloadArgs),
    /// Flush a running node's caches.
    #[command(subcommand)]
    Cache(control::CacheCommand),
}

/// Runs the command; an `Err` is reported as one line on stderr.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Key(command) => key::run(command),
        Command::Zone(command) => zone::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Resolve(args) => resolve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Status(args) => control::status(args),
        Command::Reload(args) => control::reload(args),
        Command::Cache(command) => control::cache(command),
    }
}
