//! How the proxy reaches kata-cr-agent, and where a container's rootfs is
//! from the agent's side. Host mode: a unix socket on this host, the rootfs
//! as the inner runtime mounted it (`<bundle>/rootfs`). Kata mode: the agent
//! inside the guest, which sees the rootfs at `/run/kata-containers/<id>/rootfs`.

use std::path::PathBuf;
use std::time::Duration;

use agent_ext::api::{self, AgentClient};

use crate::config::{AgentMode, Config};
use crate::containers::Container;
use crate::error::{Error, Result};

pub struct AgentBackend {
    mode: AgentMode,
    address: String,
    pub timeout: Duration,
}

impl AgentBackend {
    pub fn from_config(cfg: &Config) -> Self {
        AgentBackend {
            mode: cfg.agent.mode,
            address: format!("unix://{}", cfg.agent.socket.trim_start_matches("unix://")),
            timeout: Duration::from_secs(cfg.agent.timeout_secs),
        }
    }

    pub async fn connect(&self) -> Result<AgentClient> {
        match self.mode {
            AgentMode::Host => api::connect(&self.address).await.map_err(|e| {
                Error::FailedPrecondition(format!(
                    "kata-cr-agent unreachable at {} (agent.mode = host): {e}",
                    self.address
                ))
            }),
            AgentMode::Kata => Err(Error::FailedPrecondition(
                "agent.mode = kata: reaching kata-cr-agent through the Kata shim is not part of this build; \
                 set agent.mode = \"host\" with a host kata-cr-agent"
                    .into(),
            )),
        }
    }

    /// Whether the agent writes through the proxy's own kernel (host mode):
    /// then the images need no fsync before the proxy reads them.
    pub fn same_kernel(&self) -> bool {
        self.mode == AgentMode::Host
    }

    /// The container's rootfs as the agent sees it.
    pub fn agent_rootfs(&self, c: &Container) -> PathBuf {
        match self.mode {
            AgentMode::Host => c.host_rootfs(),
            AgentMode::Kata => PathBuf::from(format!("/run/kata-containers/{}/rootfs", c.id)),
        }
    }

    /// Where the files the agent writes into the rootfs appear on this host.
    pub fn host_upper(&self, c: &Container) -> Option<PathBuf> {
        match (&c.upperdir, self.mode) {
            (Some(u), _) => Some(u.clone()),
            (None, AgentMode::Host) => Some(c.host_rootfs()),
            (None, AgentMode::Kata) => None,
        }
    }
}

/// An agent's ttrpc error, with the container named and its code kept.
pub fn agent_error(id: &str, verb: &str, e: ttrpc::Error) -> Error {
    match e {
        ttrpc::Error::RpcStatus(s) => {
            let mut s = s;
            let msg = format!("{verb} of container {id}: {}", s.message());
            s.set_message(msg);
            Error::Ttrpc(ttrpc::Error::RpcStatus(s))
        }
        e => Error::FailedPrecondition(format!("{verb} of container {id}: kata-cr-agent: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use ttrpc::Code;

    use super::*;

    fn container(upper: Option<&str>) -> Container {
        Container {
            id: "c1".into(),
            bundle: "/run/b/c1".into(),
            upperdir: upper.map(PathBuf::from),
            wrapped: true,
        }
    }

    #[test]
    fn rootfs_and_upper_per_mode() {
        let mut cfg = Config::default();
        cfg.agent.mode = AgentMode::Host;
        let host = AgentBackend::from_config(&cfg);
        assert_eq!(
            host.agent_rootfs(&container(None)),
            PathBuf::from("/run/b/c1/rootfs")
        );
        assert_eq!(
            host.host_upper(&container(None)),
            Some(PathBuf::from("/run/b/c1/rootfs"))
        );
        assert_eq!(
            host.host_upper(&container(Some("/u"))),
            Some(PathBuf::from("/u"))
        );
        cfg.agent.mode = AgentMode::Kata;
        let kata = AgentBackend::from_config(&cfg);
        assert_eq!(
            kata.agent_rootfs(&container(None)),
            PathBuf::from("/run/kata-containers/c1/rootfs")
        );
        assert_eq!(kata.host_upper(&container(None)), None);
    }

    #[tokio::test]
    async fn unreachable_agent_names_where_it_looked() {
        let mut cfg = Config::default();
        cfg.agent.mode = AgentMode::Host;
        cfg.agent.socket = "/nonexistent/agent.sock".into();
        let e = AgentBackend::from_config(&cfg)
            .connect()
            .await
            .err()
            .unwrap();
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("/nonexistent/agent.sock"), "{e}");
    }

    #[test]
    fn agent_status_keeps_its_code_and_gains_the_container() {
        let e = agent_error(
            "c9",
            "checkpoint",
            ttrpc::Error::RpcStatus(ttrpc::get_status(Code::NOT_FOUND, "no init")),
        );
        assert_eq!(e.code(), Code::NOT_FOUND);
        assert!(e.to_status().message().contains("container c9"));
    }
}
