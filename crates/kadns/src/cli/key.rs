//! `kadns key …`: zone keys.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a new zone key into a new file (mode 0600) and print its zone id.
    Generate {
        /// Where to write the key. An existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the zone id of a key file.
    Show {
        /// The key file.
        #[arg(value_name = "FILE")]
        key: PathBuf,
    },
}

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Generate { out } => {
            let key = kadns_publisher::generate_key(&out).context("cannot create the key")?;
            println!("{}", key.zone_id());
        }
        KeyCommand::Show { key } => {
            let key = kadns_publisher::load_key(&key).context("cannot load the key")?;
            println!("{}", key.zone_id());
        }
    }
    Ok(ExitCode::SUCCESS)
}
