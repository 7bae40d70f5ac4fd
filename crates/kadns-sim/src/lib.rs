//! kadns-sim: many **production** kadns-dht nodes (the real event loop,
//! behaviour and validating store) in one process, over an in-memory link
//! layer with per-pair delay, loss and dead nodes; scenarios (steady, dead,
//! churn, liars, eclipse) and their figures.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kadns_sim::scenario::ScenarioError> {
//! use std::time::Duration;
//! use kadns_sim::{link::LinkConfig, report, scenario, world::sim_config};
//!
//! let params = scenario::Params {
//!     nodes: 50,
//!     lookups: 20,
//!     parallel: 8,
//!     seed: 1,
//!     link: LinkConfig::fixed(Duration::from_millis(50)),
//!     eclipse_bits: 10,
//!     config: sim_config(),
//! };
//! let result = scenario::run(scenario::Kind::Dead(50.0), &params).await?;
//! let figures = report::scenario_figures(&result);
//! println!("{}", report::table_row(&figures));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod link;
pub mod names;
pub mod report;
pub mod scenario;
pub mod storage;
pub mod world;
