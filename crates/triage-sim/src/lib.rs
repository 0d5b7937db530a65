//! A seeded storm generator: realistic Alertmanager traffic with ground
//! truth, for the example storm, tests and benchmarks.
//!
//! Faults start in one service and propagate to the services that depend
//! on it, hop by hop, with delays and a probability per hop; every affected
//! service fires symptom alerts (errors, latency, saturation, SLO burn) on
//! a few instances. Around them: background noise on random services,
//! flapping alerts, periodic re-notifications, and fleet-wide alerts with
//! no service label. Records arrive out of event-time order by less than a
//! bound, as they would through Alertmanager. The same seed gives the same
//! storm, byte for byte: the generator uses its own SplitMix64 generator and
//! no clock.

mod rng;
mod storm;
mod topology;

pub use rng::SplitMix64;
pub use storm::{Storm, StormSpec, TruthRow, generate};
pub use topology::{deep_chain, layered_topology, wide_fanout};
