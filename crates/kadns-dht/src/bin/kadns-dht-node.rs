//! A bare DHT node for tests: `kadns-dht-node --data-dir DIR [--listen ADDR]
//! [--bootstrap ADDR]...`, or `kadns-dht-node --data-dir DIR --check KEY`.
//!
//! Prints `p2p <multiaddr/p2p/PEER>` for each listen address, and
//! `ack <key> <sequence>` once a record is on disk. `--check` opens the store
//! and prints `present <sequence>` or `absent`. (The product binary is
//! `kadns serve`; this one exists for the crash tests.)

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use kadns_dht::{Config, DataDir, Event, Node, SledStorage, Storage};
use kadns_record::{DhtKey, validate};

fn usage() -> ExitCode {
    eprintln!(
        "usage: kadns-dht-node --data-dir DIR [--listen ADDR] [--bootstrap ADDR]... | --data-dir DIR --check KEY"
    );
    ExitCode::from(2)
}

fn parse_key(hex: &str) -> Option<DhtKey> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    DhtKey::from_slice(&bytes?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::default();
    let mut check = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else {
            return usage();
        };
        match arg.as_str() {
            "--data-dir" => config.data_dir = DataDir::Path(PathBuf::from(value)),
            "--listen" => match value.parse() {
                Ok(addr) => config.listen = vec![addr],
                Err(_) => return usage(),
            },
            "--bootstrap" => match value.parse() {
                Ok(addr) => config.bootstrap.push(addr),
                Err(_) => return usage(),
            },
            "--check" => check = Some(value),
            _ => return usage(),
        }
    }
    let DataDir::Path(dir) = config.data_dir.clone() else {
        return usage();
    };
    if let Some(key) = check {
        let Some(key) = parse_key(&key) else {
            return usage();
        };
        let storage = match SledStorage::open(&dir.join("db")) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match storage.get(&key) {
            Ok(Some(r)) => match validate(&key, &r.bytes, kadns_dht::unix_now()) {
                Ok(b) => println!("present {}", b.sequence()),
                Err(e) => println!("invalid {}", e.reason()),
            },
            Ok(None) => println!("absent"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    let node = match Node::spawn(config).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = node.handle();
    let mut events = handle.subscribe();
    let mut out = std::io::stdout().lock();
    for addr in handle.listen_addrs().await.unwrap_or_default() {
        let _ = writeln!(out, "p2p {addr}");
    }
    let _ = out.flush();
    drop(out);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(Event::RecordStored { key, sequence, .. }) => {
                    println!("ack {key} {sequence}");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
        }
    }
    node.shutdown().await;
    ExitCode::SUCCESS
}
