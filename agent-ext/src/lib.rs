//! Guest-side programs of kata-cr.
//!
//! Each program keeps its logic in a library module here and has a thin
//! binary under `src/bin/`:
//! - [`init`]: `kata-cr-init`, PID 1 of every kata-cr container.
//! - [`agent`]: `kata-cr-agent`, the checkpoint daemon.
//!
//! [`api`] is the daemon's ttrpc API, the `kata-cr-api` crate shared with
//! the proxy.

pub mod agent;
pub use kata_cr_api as api;
pub mod init;
