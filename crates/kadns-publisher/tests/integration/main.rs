//! Integration tests of kadns-publisher against in-process DHT nodes.

mod publish;
mod zone_publisher;
mod zonefile;
