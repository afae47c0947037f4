//! `Capabilities`: the API revision, and what criu says about itself and
//! this kernel.

use super::Daemon;
use crate::api::{CapabilitiesRequest, CapabilitiesResponse, API_VERSION};

/// Runs `criu --version` and `criu check`; a missing criu is reported in the
/// response, not as an error (the caller wants to know what is missing).
pub async fn capabilities(daemon: &Daemon, _req: CapabilitiesRequest) -> CapabilitiesResponse {
    let mut resp = CapabilitiesResponse::new();
    resp.api_version = API_VERSION;
    resp.agent_version = env!("CARGO_PKG_VERSION").to_string();
    match daemon.criu.version().await {
        Ok(v) => resp.criu_version = v,
        Err(e) => {
            resp.criu_check_output = e.to_string();
            return resp;
        }
    }
    match daemon.criu.check().await {
        Ok((ok, out)) => {
            resp.criu_check_ok = ok;
            resp.criu_check_output = out;
        }
        Err(e) => resp.criu_check_output = e.to_string(),
    }
    resp
}
