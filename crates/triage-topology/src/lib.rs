//! The service catalog as a dependency graph.
//!
//! A [`Topology`] is built once from the catalog's [`ServiceSpec`]s and then
//! shared read-only by every correlator (swapped whole on reload). It answers
//! the questions the engine asks on the hot path in constant or
//! neighbourhood time: which service a name or alias means, which services
//! lie within `max_hops` along dependency edges (in either direction, never
//! through a shared dependency between siblings), and, off the hot path,
//! transitive dependents for the blast radius and shortest paths for
//! explanations.
//!
//! Edges point from a service to what it depends on: `checkout -> payment`
//! means checkout calls payment, so a payment fault shows up as checkout
//! symptoms.

mod graph;
mod spec;

pub use graph::{
    CLOSURE_LIMIT, Neighbour, Relation, Service, ServiceId, ServiceSet, Topology, TopologyStats,
};
pub use spec::{ServiceSpec, TopologyError};
