//! Sign one record with a zone key and publish it into the DHT, from Rust.
//!
//! ```sh
//! kadns key generate --out example.key
//! kadns demo &        # prints a `bootstrap /ip4/…/p2p/…` line
//! cargo run -p kadns-publisher --example publish -- BOOTSTRAP example.key www 192.0.2.7
//! kadns resolve --bootstrap BOOTSTRAP www.<zone id>
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kadns_publisher::kadns_dht::{self, Mode, Node};
use kadns_publisher::{DEFAULT_PUBLISH_CONCURRENCY, ZoneState, load_key, publish};
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_record::{Bundle, OwnerName, Rr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, key_path, name, address] = args.as_slice() else {
        return Err("usage: publish BOOTSTRAP-MULTIADDR KEYFILE NAME IPV4".into());
    };
    let key = load_key(key_path)?;
    let address: Ipv4Addr = address.parse()?;

    // One bundle: every record of the name, a sequence number above any
    // earlier one for this key, valid for a week.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let sequence = ZoneState::beside_key(key_path).next_sequence(now)?;
    let owner = OwnerName::from_labels(name.split('.').map(str::as_bytes))?;
    let record = Rr::new(300, &RData::A(A::from(address)))?;
    let bundle = Bundle::new(owner, sequence, now + 7 * 86_400, vec![record])?.sign(&key)?;

    // A short-lived DHT client puts it on the closest nodes.
    let mut dht = kadns_dht::Config::default();
    dht.mode = Mode::Client;
    dht.bootstrap = vec![bootstrap.parse()?];
    let node = Node::spawn(dht).await?;
    node.handle()
        .wait_for_peers(1, Duration::from_secs(10))
        .await?;
    let report = publish(
        &node.handle(),
        vec![bundle],
        DEFAULT_PUBLISH_CONCURRENCY,
        |_| {},
    )
    .await;
    for published in &report.names {
        println!(
            "{name}.{} stored on {} nodes",
            key.zone_id(),
            published.replicas()
        );
    }
    node.shutdown().await;
    Ok(())
}
