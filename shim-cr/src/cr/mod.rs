//! Checkpoint and restore of a kata-cr container: what the proxy asks of
//! kata-cr-agent, how it reaches the agent, how image sets cross between
//! the container's rootfs and containerd's paths, and the bundle rewrite
//! that makes kata-cr-init PID 1.

pub mod agent;
pub mod checkpoint;
pub mod container;
pub mod kata;
pub mod restore;
pub mod spec_rewrite;
pub mod staging;
