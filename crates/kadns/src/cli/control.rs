//! `kadns status`, `kadns reload` and `kadns cache flush`: requests to a
//! running node through its control socket.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kadns::control::{ReloadReport, Request, Response, Status};

/// How long the node may take to answer (a status probes the upstreams, a
/// reload opens zone files).
const TIMEOUT: Duration = Duration::from_secs(70);

/// Which node to talk to.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The node's data directory, where its control socket is [default:
    /// data_dir of --config, else $XDG_DATA_HOME/kadns, else /var/lib/kadns
    /// if only the service's node runs].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The node's configuration file, to find its data directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl NodeArgs {
    fn call(&self, request: &Request) -> anyhow::Result<Response> {
        let data_dir = match (&self.data_dir, &self.config) {
            (Some(dir), _) => dir.clone(),
            (None, Some(file)) => kadns::ServeConfig::from_file(file)?.data_dir(),
            (None, None) => default_node_dir(),
        };
        let path = kadns::control::socket_path(&data_dir);
        let response = kadns::control::request(&path, request, TIMEOUT)?;
        if !response.ok {
            bail!(
                "{}",
                response.error.unwrap_or_else(|| "the node refused".into())
            );
        }
        Ok(response)
    }
}

/// The data directory of this user's node, or else the service's
/// (`dist/kadns.service` keeps it in `/var/lib/kadns`) if that one has a
/// control socket and this user's has none.
fn default_node_dir() -> PathBuf {
    let own = kadns::default_data_dir();
    let service = PathBuf::from(SERVICE_DATA_DIR);
    let has_socket = |dir: &std::path::Path| kadns::control::socket_path(dir).exists();
    if !has_socket(&own) && has_socket(&service) {
        return service;
    }
    own
}

/// Where `dist/kadns.service` keeps the node's data.
const SERVICE_DATA_DIR: &str = "/var/lib/kadns";

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Drop cached answers: of NAME (every type), or all of them.
    Flush {
        /// The name; without it, everything is flushed.
        name: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let result = args.node.call(&Request::Status)?.result.unwrap_or_default();
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&result)?)
    } else {
        let status: Status =
            serde_json::from_value(result).context("the node's status does not parse")?;
        status.to_string()
    };
    // A closed pipe (`kadns status | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn reload(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let result = args.node.call(&Request::Reload)?.result.unwrap_or_default();
    let report: ReloadReport =
        serde_json::from_value(result).context("the node's reload report does not parse")?;
    if report.applied.is_empty() {
        println!("reloaded: nothing changed");
    }
    for applied in &report.applied {
        println!("reloaded: {applied}");
    }
    for setting in &report.needs_restart {
        println!("needs a restart: {setting}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cache(command: CacheCommand) -> anyhow::Result<ExitCode> {
    let CacheCommand::Flush { name, node } = command;
    let result = node
        .call(&Request::CacheFlush { name: name.clone() })?
        .result
        .unwrap_or_default();
    let count = |key: &str| result.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    println!(
        "flushed {}: {} bundles, {} forwarded answers",
        name.as_deref().unwrap_or("everything"),
        count("bundles"),
        count("forwarded")
    );
    Ok(ExitCode::SUCCESS)
}
