//! How the proxy reaches kata-cr-agent, and where a container's rootfs is
//! from the agent's side. Host mode: a unix socket on this host, the rootfs
//! as the inner runtime mounted it (`<bundle>/rootfs`). Kata mode: the agent
//! inside the pod's guest, reached through the Kata shim's management socket
//! (see `kata`), which sees the rootfs at `/run/kata-containers/<id>/rootfs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_ext::api::{self, AgentClient};

use crate::bundle_state::BundleState;
use crate::config::{AgentMode, Config};
use crate::containers::Container;
use crate::error::{Error, IoContext, Result};
use crate::kata;

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
    /// Kata mode: the sandbox to reach, when it is not the one of the
    /// proxy's working directory (the `guest` subcommand).
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

    /// Kata mode: reach the agent of sandbox `sid` rather than the one of the
    /// working directory's bundle.
    pub fn for_sandbox(mut self, sid: &str) -> Self {
        self.sandbox = Some(sid.to_string());
        self
    }

    /// The agent serving this proxy's pod. In Kata mode the pod is the one of
    /// the bundle the proxy server runs in (its working directory: `start`
    /// runs it in the bundle of the sandbox or plain container that created
    /// it; containerd names bundles by container id).
    pub async fn connect(&self) -> Result<AgentClient> {
        match self.mode {
            AgentMode::Host => self.connect_host().await,
            AgentMode::Kata if self.sandbox.is_some() => {
                self.connect_sandbox(self.sandbox.as_deref().unwrap_or_default())
                    .await
            }
            AgentMode::Kata => {
                let cwd = std::env::current_dir()
                    .ctx(|| "the proxy's working directory (its sandbox's bundle)".into())?;
                self.connect_sandbox(&sandbox_of_bundle(&cwd)?).await
            }
        }
    }

    #[cfg(test)]
    fn with_kata_roots(mut self, roots: kata::Roots) -> Self {
        self.kata_roots = roots;
        self
    }

    async fn connect_host(&self) -> Result<AgentClient> {
        api::connect(&self.address).await.map_err(|e| {
            Error::FailedPrecondition(format!(
                "kata-cr-agent unreachable at {} (agent.mode = host): {e}",
                self.address
            ))
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

/// The Kata sandbox of the container whose bundle is `bundle`: the
/// `sandbox` its bundle state records for a pod member, its own id (the
/// bundle's name) for a sandbox or a plain ctr container.
pub fn sandbox_of_bundle(bundle: &Path) -> Result<String> {
    let st = BundleState::read(bundle).map_err(|e| {
        Error::FailedPrecondition(format!(
            "which Kata sandbox this proxy serves is unknown: {e}"
        ))
    })?;
    if let Some(sid) = st.sandbox {
        return Ok(sid);
    }
    bundle
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "bundle {} does not name a container",
                bundle.display()
            ))
        })
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
            restore_pending: None,
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

    fn bundle_with_state(root: &Path, id: &str, sandbox: Option<&str>) -> PathBuf {
        let bundle = root.join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        BundleState {
            proxy: crate::bootstrap::Bootstrap {
                form: crate::bootstrap::Form::Bare,
                version: 2,
                address: "unix:///run/containerd/s/x".into(),
                protocol: "ttrpc".into(),
            },
            inner_binary: "containerd-shim-kata-v2".into(),
            inner: None,
            socket: sandbox.is_none().then(|| "/run/containerd/s/x".into()),
            sandbox: sandbox.map(str::to_string),
        }
        .write(&bundle)
        .unwrap();
        bundle
    }

    #[test]
    fn sandbox_of_a_pod_member_and_of_a_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let sb = bundle_with_state(d.path(), "sb1", None);
        let member = bundle_with_state(d.path(), "c1", Some("sb1"));
        assert_eq!(sandbox_of_bundle(&sb).unwrap(), "sb1");
        assert_eq!(sandbox_of_bundle(&member).unwrap(), "sb1");
        let e = sandbox_of_bundle(&d.path().join("c2")).unwrap_err();
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("c2/kata-cr.json"), "{e}");
    }

    #[tokio::test]
    async fn kata_mode_asks_the_sandboxes_management_socket() {
        let d = tempfile::tempdir().unwrap();
        let member = bundle_with_state(d.path(), "c1", Some("sb1"));
        let roots = d.path().join("vc-sbs");
        crate::kata::mgmt::tests::serve(
            &roots,
            "sb1",
            crate::kata::mgmt::tests::ok("hvsock:///nonexistent/sb1/clh.sock:1024"),
        );
        let mut cfg = Config::default();
        cfg.agent.mode = AgentMode::Kata;
        let backend = AgentBackend::from_config(&cfg).with_kata_roots(kata::Roots(vec![roots]));
        let sid = sandbox_of_bundle(&member).unwrap();
        let e = backend.connect_sandbox(&sid).await.err().unwrap();
        let m = e.to_string();
        assert!(m.contains("sandbox sb1"), "{m}");
        assert!(m.contains("hvsock:///nonexistent/sb1/clh.sock:1029"), "{m}");
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
