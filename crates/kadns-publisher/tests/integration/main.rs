//! Integration tests of kadns-publisher against in-process DHT nodes.

mod publish;
mod zonefile;
mod zone_publisher;
