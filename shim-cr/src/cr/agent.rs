//! How the proxy reaches kata-cr-agent, and where a container's rootfs is
//! from the agent's side. Host mode: a unix socket on this host, the rootfs
//! as the inner runtime mounted it (`<bundle>/rootfs`). Kata mode: the agent
//! inside the pod's guest, reached through the Kata shim's management socket
//! (see `kata`), which sees the rootfs at `/run/kata-containers/<id>/rootfs`.

use std::path::PathBuf;
use std::time::Duration;

use kata_cr_api::{self as api, AgentClient};

use crate::config::{AgentMode, Config};
use crate::cr::container::Container;
use crate::cr::kata;
use crate::error::{Error, Result};

/// Upper bound for finding and connecting to the agent (not for the RPC).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentBackend {
    mode: AgentMode,
    address: String,
    pub timeout: Duration,
    /// Kata mode: where the Kata shims' management sockets are.
    kata_roots: kata::Roots,
    /// Kata mode, remote hypervisor: each sandbox's hybrid vsock.
    remote: kata::RemoteHybridVsock,
    /// Kata mode: kata-cr-agent's guest vsock port.
    port: u32,
    /// Kata mode: the sandbox whose guest runs the agent (the proxy's pod).
    sandbox: Option<String>,
}

impl AgentBackend {
    pub fn from_config(cfg: &Config) -> Self {
        AgentBackend {
            mode: cfg.agent.mode,
            address: format!("unix://{}", cfg.agent.socket.trim_start_matches("unix://")),
            timeout: Duration::from_secs(cfg.agent.timeout_secs),
            kata_roots: kata::Roots::default(),
            remote: kata::RemoteHybridVsock(cfg.agent.remote_hybrid_vsock.clone()),
            port: api::VSOCK_PORT,
            sandbox: None,
        }
    }

    /// Kata mode: reach the agent in the guest of sandbox `sid`.
    pub fn for_sandbox(mut self, sid: &str) -> Self {
        self.sandbox = Some(sid.to_string());
        self
    }

    /// The agent serving the sandbox (Kata mode) or this host (host mode).
    pub async fn connect(&self) -> Result<AgentClient> {
        match (self.mode, self.sandbox.as_deref()) {
            (AgentMode::Host, _) => self.connect_host().await,
            (AgentMode::Kata, Some(sid)) => self.connect_sandbox(sid).await,
            (AgentMode::Kata, None) => Err(Error::AgentUnreachable {
                at: "a Kata guest".into(),
                reason: "which sandbox this proxy serves is unknown".into(),
            }),
        }
    }

    #[cfg(test)]
    fn with_kata_roots(mut self, roots: kata::Roots) -> Self {
        self.kata_roots = roots;
        self
    }

    async fn connect_host(&self) -> Result<AgentClient> {
        api::connect(&self.address)
            .await
            .map_err(|e| Error::AgentUnreachable {
                at: format!("{} (agent.mode = host)", self.address),
                reason: match e {
                    api::ConnectError::Connect { source, .. } => source.to_string(),
                    e => e.to_string(),
                },
            })
    }

    async fn connect_sandbox(&self, sid: &str) -> Result<AgentClient> {
        let timeout = CONNECT_TIMEOUT.min(self.timeout);
        kata::connect(&self.kata_roots, &self.remote, sid, self.port, timeout).await
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

#[cfg(test)]
mod tests {
    use ttrpc::Code;

    use super::*;

    fn container(upper: Option<&str>) -> Container {
        Container {
            id: "c1".into(),
            bundle: "/run/b/c1".into(),
            upperdir: upper.map(PathBuf::from),
            exec_guard: None,
            checkpoint: None,
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

    #[tokio::test]
    async fn kata_mode_asks_the_sandboxes_management_socket() {
        let d = tempfile::tempdir().unwrap();
        let roots = d.path().join("vc-sbs");
        crate::cr::kata::mgmt::tests::serve(
            &roots,
            "sb1",
            crate::cr::kata::mgmt::tests::ok("hvsock:///nonexistent/sb1/clh.sock:1024"),
        );
        let mut cfg = Config::default();
        cfg.agent.mode = AgentMode::Kata;
        let backend = AgentBackend::from_config(&cfg).with_kata_roots(kata::Roots(vec![roots]));
        let e = backend.connect().await.err().unwrap();
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("sandbox"), "{e}");
        let e = backend.for_sandbox("sb1").connect().await.err().unwrap();
        let m = e.to_string();
        assert!(m.contains("sandbox sb1"), "{m}");
        assert!(m.contains("hvsock:///nonexistent/sb1/clh.sock:1029"), "{m}");
    }
}
