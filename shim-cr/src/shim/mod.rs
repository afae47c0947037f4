//! The shim protocol containerd speaks to a runtime binary: `start` and
//! `delete`, their command line, the bootstrap answer, the pod grouping, the
//! proxy's socket and what `start` leaves in the bundle.

pub mod args;
pub mod bootstrap;
pub mod bundle_state;
pub mod delete;
pub mod grouping;
pub mod socket;
pub mod start;
