//! The agent URL a Kata shim reports on `/agent-url`, and the address of
//! kata-cr-agent derived from it (same VM socket, our guest port).
//!
//! Forms Kata 3.x produces (read from its source):
//! - Go shim (`virtcontainers/types`): `vsock://<cid>:<port>` (qemu),
//!   `hvsock://<uds path>:<port>` (clh, fc), `remote://<tunnel socket>`
//!   (remote hypervisor), `mock://<path>` (its unit tests).
//! - runtime-rs (`hypervisor::get_agent_socket`): `vsock://<cid>` (qemu),
//!   `hvsock://<uds path>` (dragonball, fc, clh), no port; and an empty body
//!   while the sandbox has no agent yet.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the Kata agent is, as the Kata shim reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUrl {
    /// AF_VSOCK to a guest CID (the host has vhost-vsock).
    Vsock { cid: u32, port: Option<u32> },
    /// A hybrid vsock: a unix socket on the host mediated by the VMM
    /// (`CONNECT <port>\n` / `OK ...`).
    HybridVsock { path: PathBuf, port: Option<u32> },
    /// Kata's remote hypervisor: a socket tunnelled to the Kata agent alone.
    /// kata-cr-agent is reached through the hybrid vsock that kata-cr's
    /// `[agent] remote_hybrid_vsock` setting names.
    Remote { tunnel: PathBuf },
}

/// How to reach kata-cr-agent: the same VM socket, another guest port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Vsock { cid: u32, port: u32 },
    HybridVsock { path: PathBuf, port: u32 },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Target::HybridVsock { path, port } => {
                write!(f, "hvsock://{}:{port}", path.display())
            }
        }
    }
}

impl AgentUrl {
    pub fn parse(text: &str) -> Result<Self> {
        let url = text.trim();
        let bad = |why: &str| Error::Kata {
            what: format!("Kata agent URL {url:?}"),
            reason: why.to_string(),
        };
        if url.is_empty() {
            return Err(bad(
                "empty (the sandbox has no agent connection yet, or the Kata shim could not tell it)",
            ));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not of the form scheme://address"))?;
        match scheme {
            "vsock" => {
                let (cid, port) = split_port(rest).map_err(|e| bad(&e))?;
                let cid = cid
                    .parse::<u32>()
                    .map_err(|_| bad("the vsock CID is not a number"))?;
                Ok(AgentUrl::Vsock { cid, port })
            }
            "hvsock" => {
                let (path, port) = split_port(rest).map_err(|e| bad(&e))?;
                if path.is_empty() {
                    return Err(bad("the hybrid vsock has no unix socket path"));
                }
                Ok(AgentUrl::HybridVsock {
                    path: PathBuf::from(path),
                    port,
                })
            }
            "remote" if rest.is_empty() => Err(bad("the remote hypervisor's socket is empty")),
            "remote" => Ok(AgentUrl::Remote {
                tunnel: PathBuf::from(rest),
            }),
            "mock" => Err(bad("Kata's mock hybrid vsock (its unit tests), not a VM")),
            _ => Err(bad("unknown scheme (expected vsock or hvsock)")),
        }
    }

    /// kata-cr-agent's address: this VM socket with `port`. A remote
    /// hypervisor's tunnel reaches the Kata agent only: then the sandbox's
    /// hybrid vsock comes from `remote` (the `[agent] remote_hybrid_vsock`
    /// setting, already resolved for the sandbox), and without one there is
    /// no way to kata-cr-agent.
    pub fn with_port(&self, port: u32, remote: Option<&Path>) -> Result<Target> {
        match self {
            AgentUrl::Vsock { cid, .. } => Ok(Target::Vsock { cid: *cid, port }),
            AgentUrl::HybridVsock { path, .. } => Ok(Target::HybridVsock {
                path: path.clone(),
                port,
            }),
            AgentUrl::Remote { tunnel } => match remote {
                Some(path) => Ok(Target::HybridVsock {
                    path: path.to_path_buf(),
                    port,
                }),
                None => Err(Error::Kata {
                    what: format!("Kata agent URL \"remote://{}\"", tunnel.display()),
                    reason: "a remote hypervisor's tunnel reaches the Kata agent only; \
                             set [agent] remote_hybrid_vsock in kata-cr's configuration to the \
                             sandbox's hybrid vsock (\"{sandbox}\" stands for the sandbox id), \
                             so that kata-cr reaches kata-cr-agent"
                        .into(),
                }),
            },
        }
    }
}

/// The `[agent] remote_hybrid_vsock` setting: a path template in which
/// `{sandbox}` stands for the sandbox id ("" when unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteHybridVsock(pub String);

impl RemoteHybridVsock {
    /// The hybrid vsock of sandbox `sid`, if the setting is there.
    pub fn path(&self, sid: &str) -> Option<PathBuf> {
        let t = self.0.trim();
        (!t.is_empty()).then(|| PathBuf::from(t.replace("{sandbox}", sid)))
    }
}

/// `address[:port]`; the port is the part after the last colon when that is
/// all digits (a socket path may itself contain colons).
fn split_port(rest: &str) -> std::result::Result<(&str, Option<u32>), String> {
    match rest.rsplit_once(':') {
        Some((addr, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let port = p
                .parse::<u32>()
                .map_err(|_| format!("port {p} is out of range"))?;
            Ok((addr, Some(port)))
        }
        Some((_, "")) => Err("empty port after ':'".into()),
        _ => Ok((rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(path: &str, port: Option<u32>) -> AgentUrl {
        AgentUrl::HybridVsock {
            path: path.into(),
            port,
        }
    }

    #[test]
    fn go_shim_forms() {
        assert_eq!(
            AgentUrl::parse("vsock://3:1024").unwrap(),
            AgentUrl::Vsock {
                cid: 3,
                port: Some(1024)
            }
        );
        assert_eq!(
            AgentUrl::parse("hvsock:///run/vc/vm/abc/clh.sock:1024").unwrap(),
            hv("/run/vc/vm/abc/clh.sock", Some(1024))
        );
        assert_eq!(
            AgentUrl::parse("hvsock:///run/vc/firecracker/abc/root/kata.hvsock:1024\n").unwrap(),
            hv("/run/vc/firecracker/abc/root/kata.hvsock", Some(1024))
        );
    }

    #[test]
    fn runtime_rs_forms_have_no_port() {
        assert_eq!(
            AgentUrl::parse("vsock://1234567").unwrap(),
            AgentUrl::Vsock {
                cid: 1234567,
                port: None
            }
        );
        assert_eq!(
            AgentUrl::parse("hvsock:///run/kata/abc/root/kata.hvsock").unwrap(),
            hv("/run/kata/abc/root/kata.hvsock", None)
        );
    }

    #[test]
    fn colons_in_the_socket_path_are_kept() {
        assert_eq!(
            AgentUrl::parse("hvsock:///run/a:b/kata.hvsock:1024").unwrap(),
            hv("/run/a:b/kata.hvsock", Some(1024))
        );
        assert_eq!(
            AgentUrl::parse("hvsock:///run/a:b/kata.hvsock").unwrap(),
            hv("/run/a:b/kata.hvsock", None)
        );
    }

    #[test]
    fn our_port_replaces_kata_agents() {
        let u = AgentUrl::parse("vsock://3:1024").unwrap();
        assert_eq!(
            u.with_port(1029, None).unwrap().to_string(),
            "vsock://3:1029"
        );
        let u = AgentUrl::parse("hvsock:///run/x/kata.hvsock").unwrap();
        assert_eq!(
            u.with_port(1029, None).unwrap(),
            Target::HybridVsock {
                path: "/run/x/kata.hvsock".into(),
                port: 1029
            }
        );
        assert_eq!(
            u.with_port(1029, None).unwrap().to_string(),
            "hvsock:///run/x/kata.hvsock:1029"
        );
        // the management socket's vsock wins over the remote setting
        assert_eq!(
            u.with_port(1029, Some(Path::new("/elsewhere"))).unwrap(),
            Target::HybridVsock {
                path: "/run/x/kata.hvsock".into(),
                port: 1029
            }
        );
    }

    #[test]
    fn a_remote_hypervisor_needs_the_setting() {
        let u = AgentUrl::parse("remote:///run/rh/sb1/agent.sock").unwrap();
        assert_eq!(
            u,
            AgentUrl::Remote {
                tunnel: "/run/rh/sb1/agent.sock".into()
            }
        );
        let e = u.with_port(1029, None).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        let m = e.to_string();
        assert!(m.contains("remote:///run/rh/sb1/agent.sock"), "{m}");
        assert!(m.contains("remote_hybrid_vsock"), "{m}");
        let setting = RemoteHybridVsock("/run/rh/{sandbox}/vm.vsock".into());
        assert_eq!(
            setting.path("sb1"),
            Some(PathBuf::from("/run/rh/sb1/vm.vsock"))
        );
        assert_eq!(RemoteHybridVsock(" ".into()).path("sb1"), None);
        assert_eq!(
            u.with_port(1029, setting.path("sb1").as_deref()).unwrap(),
            Target::HybridVsock {
                path: "/run/rh/sb1/vm.vsock".into(),
                port: 1029
            }
        );
    }

    #[test]
    fn unusable_forms_say_why() {
        for (url, why) in [
            ("", "empty"),
            ("  \n", "empty"),
            ("remote://", "socket is empty"),
            ("mock:///tmp/x", "mock"),
            ("tcp://1.2.3.4:1024", "unknown scheme"),
            ("vsock:3:1024", "scheme://"),
            ("vsock://x:1024", "CID"),
            ("vsock://3:", "empty port"),
            ("vsock://3:99999999999", "out of range"),
            ("hvsock://:1024", "no unix socket path"),
        ] {
            let e = AgentUrl::parse(url).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
            assert!(e.to_string().contains(why), "{url:?}: {e}");
        }
    }
}
