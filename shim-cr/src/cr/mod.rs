//! Checkpoint and restore of a kata-cr container, independent of the proxy
//! that calls them (the `guest` tool runs them too):
//! - `container`: what C/R knows of a container;
//! - `checkpoint`, `restore`: the two operations;
//! - `staging`: image sets between the container's rootfs and containerd's
//!   paths, never following what the container planted;
//! - `spec_rewrite`: the bundle change that makes kata-cr-init PID 1;
//! - `exec_guard`: execs of a restored container get no more than its
//!   original spec granted;
//! - `agent`: how kata-cr-agent is reached (host unix socket, or `kata`:
//!   the Kata shim's management socket, vsock, hybrid vsock).

pub mod agent;
pub mod checkpoint;
pub mod container;
pub mod exec_guard;
pub mod kata;
pub mod restore;
pub mod rootfs_diff;
pub mod spec_rewrite;
pub mod staging;
