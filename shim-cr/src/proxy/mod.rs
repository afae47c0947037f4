//! The proxy server: one per pod, in front of the inner shim. It serves
//! every Task and Sandbox method, forwards them byte for byte, and
//! intercepts the few that checkpoint/restore needs.

pub mod containers;
pub mod forward;
pub mod intercept;
pub mod serve;
pub mod state;
