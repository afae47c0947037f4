//! The shim protocol containerd speaks to a runtime binary, one process per
//! `start` or `delete` (the long-lived server is `proxy`):
//! - `args`: the command line, parsed as Go's `flag` does;
//! - `start`: the pod grouping (`grouping`), the inner shim's own start,
//!   the proxy's socket (`socket`), launching the server, and the answer in
//!   the inner shim's form (`bootstrap`);
//! - `delete`: the inner shim's delete, relayed;
//! - `bundle_state`: what `start` leaves in the bundle for `delete` and for
//!   the pod's later containers.

pub mod args;
pub mod bootstrap;
pub mod bundle_state;
pub mod delete;
pub mod grouping;
pub mod socket;
pub mod start;
