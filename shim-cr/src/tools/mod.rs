//! Operator subcommands of `containerd-shim-kata-cr-v2`, running the
//! proxy's own code paths outside containerd.

pub mod doctor;
pub mod guest;
