//! Resolve a kadns name from Rust, verified on this machine, no stub needed.
//!
//! ```sh
//! kadns demo &        # prints `zone demo.kad = <zone id>` and node addresses
//! cargo run -p kadns-resolver --example resolve -- /ip4/127.0.0.1/tcp/PORT/p2p/PEER www.<zone id> A
//! ```

use std::time::Duration;

use kadns_resolver::hickory_proto::rr::{Name, RecordType};
use kadns_resolver::kadns_dht::{self, Mode, Node};
use kadns_resolver::{Config, Resolver};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: resolve BOOTSTRAP-MULTIADDR NAME [TYPE]";
    let bootstrap = args.next().ok_or(usage)?.parse()?;
    let name = Name::from_ascii(args.next().ok_or(usage)?)?;
    let record_type: RecordType = args.next().as_deref().unwrap_or("A").parse()?;

    // A DHT client: it asks the network, stores nothing for others.
    let mut dht = kadns_dht::Config::default();
    dht.mode = Mode::Client;
    dht.bootstrap = vec![bootstrap];
    let node = Node::spawn(dht).await?;
    node.handle()
        .wait_for_peers(1, Duration::from_secs(10))
        .await?;

    // The resolver verifies every record against the zone key in the name.
    let resolver = Resolver::builder(Config::default(), node.handle()).build()?;
    let answer = resolver.lookup(&name, record_type).await;
    println!(
        "{:?} (verified: {})",
        answer.response_code(),
        answer.authenticated
    );
    for record in &answer.answers {
        println!("{record}");
    }
    node.shutdown().await;
    Ok(())
}
