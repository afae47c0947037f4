//! The proxy server: one per pod, in front of the inner shim. It serves
//! every Task and Sandbox method, forwards them byte for byte, and
//! intercepts the few that checkpoint/restore needs:
//! - `serve`: the server process, its services, its lifetime;
//! - `forward`: the connection to the inner shim and the raw forwarding;
//! - `intercept`: the table of every interception and its handlers;
//! - `state`: a container's states and every allowed transition;
//! - `containers`: the containers the proxy manages, where transitions are
//!   applied;
//! - `unpause`: a checkpoint never leaves the task frozen.

pub mod containers;
pub mod forward;
pub mod intercept;
pub mod serve;
pub mod state;
pub mod unpause;
