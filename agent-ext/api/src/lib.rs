//! The contract between the kata-cr proxy and `kata-cr-agent`:
//! `katacr.agent.v1.Agent`, generated from `proto/agent.proto` (read it for
//! the meaning of every field and the error codes), the client helpers, and
//! the paths and names both sides agree on inside a container ([`INIT_PATH`],
//! [`is_private_image_dir`], [`validate_image_dir`]).
//!
//! A client:
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use kata_cr_api as api;
//! let client = api::connect("unix:///run/kata-cr/agent.sock").await?;
//! let caps = client
//!     .capabilities(api::context(), &api::CapabilitiesRequest::new())
//!     .await?;
//! assert!(caps.api_version >= api::API_VERSION);
//! # Ok(()) }
//! ```

#[allow(clippy::all, dead_code, missing_docs, non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports, unused_mut, unused_results, trivial_casts, unknown_lints, renamed_and_removed_lints)]
#[rustfmt::skip]
pub mod agent {
    //! Messages of `katacr.agent.v1` (rust-protobuf).
    include!(concat!(env!("OUT_DIR"), "/agent.rs"));
}

#[allow(clippy::all, dead_code, missing_docs, non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports, unused_mut, unused_results, trivial_casts, unknown_lints, renamed_and_removed_lints)]
#[rustfmt::skip]
pub mod agent_ttrpc {
    //! ttrpc client, server trait and registration of `katacr.agent.v1.Agent`.
    include!(concat!(env!("OUT_DIR"), "/agent_ttrpc.rs"));
}

mod criu_failure;
mod paths;

use std::time::Duration;

pub use agent::{
    CapabilitiesRequest, CapabilitiesResponse, CheckpointRequest, CheckpointResponse,
    ReleaseImagesRequest, ReleaseImagesResponse, RestoreRequest, RestoreResponse,
};
pub use agent_ttrpc::{create_agent, Agent, AgentClient};
pub use criu_failure::{full_log_line, parse_criu_failure, CriuFailure};
pub use paths::{
    is_private_image_dir, validate_image_dir, BadImageDir, IMAGE_ROOT, INIT_PATH,
    MAX_IMAGE_DIR_LEN, PRIVATE_IMAGE_DIR_HEX, PRIVATE_IMAGE_DIR_PREFIX, ROOTFS_DIFF_FILE,
};

/// Revision of `katacr.agent.v1` implemented by this crate (see
/// `CapabilitiesResponse.api_version`).
pub const API_VERSION: u32 = 4;

/// The first revision that applies `RestoreRequest.rootfs_diff`.
pub const ROOTFS_DIFF_API_VERSION: u32 = 4;

/// Full ttrpc service name.
pub const SERVICE: &str = "katacr.agent.v1.Agent";

/// vsock port the daemon listens on in a Kata guest (Kata uses 1024-1027).
pub const VSOCK_PORT: u32 = 1029;

/// Default listen address of the daemon in host mode.
pub const DEFAULT_HOST_ADDRESS: &str = "unix:///run/kata-cr/agent.sock";

/// Names of the methods of [`SERVICE`], in proto order (a test checks that
/// the generated server registers exactly these).
pub const METHODS: &[&str] = &["Capabilities", "Checkpoint", "Restore", "ReleaseImages"];

/// Error of [`connect`].
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is neither `unix://PATH` nor `vsock://CID:PORT`.
    #[error("unsupported agent address {0:?}: expected unix:///path or vsock://cid:port")]
    BadAddress(String),
    /// Connecting failed.
    #[error("connecting to the kata-cr agent at {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// ttrpc's error.
        source: ttrpc::Error,
    },
}

/// Connects to a `kata-cr-agent` at `unix:///path` (also `unix://@abstract`)
/// or `vsock://cid:port`.
pub async fn connect(addr: &str) -> Result<AgentClient, ConnectError> {
    if !(addr.starts_with("unix://") || addr.starts_with("vsock://")) {
        return Err(ConnectError::BadAddress(addr.to_string()));
    }
    let client = ttrpc::r#async::Client::connect(addr)
        .await
        .map_err(|source| ConnectError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    Ok(AgentClient::new(client))
}

/// A request context without deadline (a checkpoint takes as long as the
/// workload's memory needs).
pub fn context() -> ttrpc::context::Context {
    ttrpc::context::Context::default()
}

/// A request context with a deadline.
pub fn context_with_timeout(timeout: Duration) -> ttrpc::context::Context {
    ttrpc::context::with_timeout(timeout.as_nanos().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct Nothing;
    impl Agent for Nothing {}

    #[test]
    fn generated_service_registers_every_method() {
        let services = create_agent(Arc::new(Nothing));
        let service = services
            .get(SERVICE)
            .expect("service registered under its full name");
        let mut got: Vec<&str> = service.methods.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = METHODS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn connect_rejects_unknown_schemes() {
        let err = connect("tcp://127.0.0.1:1")
            .await
            .err()
            .expect("tcp is refused");
        assert!(matches!(err, ConnectError::BadAddress(_)), "{err}");
    }
}
