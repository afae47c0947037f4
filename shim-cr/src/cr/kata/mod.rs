//! Reaching kata-cr-agent inside a Kata guest through what stock Kata
//! exposes: the Kata shim's management socket tells the agent's VM socket
//! (`/agent-url`), and kata-cr-agent listens on its own guest vsock port
//! beside the Kata agent. AF_VSOCK when the host has vhost-vsock (qemu),
//! the VMM's hybrid vsock unix socket otherwise (clh, fc, dragonball).

pub mod agent_url;
pub mod hvsock;
pub mod mgmt;

use std::time::Duration;

pub use agent_url::{RemoteHybridVsock, Target};
use kata_cr_api::AgentClient;
pub use mgmt::Roots;
use ttrpc::r#async::transport::Socket;
use ttrpc::r#async::Client;

use crate::error::{Error, Result};

/// kata-cr-agent in sandbox `sid`'s guest, on guest vsock `port`: the VM
/// socket the Kata shim's management socket reports, or, for a remote
/// hypervisor, the one `remote` names.
pub async fn connect(
    roots: &Roots,
    remote: &RemoteHybridVsock,
    sid: &str,
    port: u32,
    timeout: Duration,
) -> Result<AgentClient> {
    let unreachable = |at: String, e: Error| Error::AgentUnreachable {
        at,
        reason: e.to_string(),
    };
    let target = target(roots, remote, sid, port, timeout)
        .await
        .map_err(|e| unreachable(format!("sandbox {sid}"), e))?;
    connect_target(&target, timeout)
        .await
        .map_err(|e| unreachable(format!("{target} (sandbox {sid})"), e))
}

/// Where kata-cr-agent of sandbox `sid` listens. Without a management
/// socket, a remote-hypervisor sandbox is still reached through the
/// `remote` setting: Kata's Go shim loses that socket under the remote
/// driver while the sandbox runs on. Each container a pod loses makes
/// containerd run the shim binary's `delete`, which reloads the sandbox
/// from its saved state; Kata does not save `remote_hypervisor_socket`, so
/// the reload fails ("Missing kernel path") and its error path removes
/// `/run/vc/sbs/<sid>`, socket included, under the live shim and VM
/// (integration/kata/README.md).
async fn target(
    roots: &Roots,
    remote: &RemoteHybridVsock,
    sid: &str,
    port: u32,
    timeout: Duration,
) -> Result<Target> {
    let hvsock = remote.path(sid);
    match (roots.find(sid)?, hvsock) {
        (Some(sock), hvsock) => {
            let url = mgmt::agent_url_at(&sock, timeout).await?;
            url.with_port(port, hvsock.as_deref())
        }
        (None, Some(path)) => {
            tracing::info!(
                sandbox = sid,
                hvsock = %path.display(),
                "no Kata management socket (Kata's remote driver removes it); \
                 reaching kata-cr-agent through [agent] remote_hybrid_vsock"
            );
            Ok(Target::HybridVsock { path, port })
        }
        (None, None) => Err(roots.missing(sid)),
    }
}

/// A ttrpc client of kata-cr-agent at `target`; connecting is bounded by
/// `timeout`.
pub async fn connect_target(target: &Target, timeout: Duration) -> Result<AgentClient> {
    let socket = match target {
        Target::Vsock { .. } => {
            let addr = target.to_string();
            match tokio::time::timeout(timeout, Socket::connect(&addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(Error::io(format!("connect {addr} (AF_VSOCK)"), e)),
                Err(_) => {
                    return Err(Error::Kata {
                        what: format!("connect {addr} (AF_VSOCK)"),
                        reason: format!("no answer within {} ms", timeout.as_millis()),
                    })
                }
            }
        }
        Target::HybridVsock { path, port } => {
            Socket::new(hvsock::connect(path, *port, timeout).await?)
        }
    };
    Ok(AgentClient::new(Client::new(socket)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kata_cr_api::{self as api, Agent, CapabilitiesRequest, CapabilitiesResponse};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;
    use ttrpc::r#async::TtrpcContext;

    use super::*;

    struct Caps;

    #[async_trait::async_trait]
    impl Agent for Caps {
        async fn capabilities(
            &self,
            _ctx: &TtrpcContext,
            _req: CapabilitiesRequest,
        ) -> ttrpc::Result<CapabilitiesResponse> {
            let mut r = CapabilitiesResponse::new();
            r.api_version = api::API_VERSION;
            Ok(r)
        }
    }

    /// The whole path against fakes: a management socket reporting a hybrid
    /// vsock, a VMM doing the CONNECT handshake and then carrying the stream
    /// to a real ttrpc server of the agent API.
    #[tokio::test]
    async fn management_socket_to_agent_over_hybrid_vsock() {
        let d = tempfile::tempdir().unwrap();
        let vm_sock = d.path().join("vm.hvsock");
        let agent_sock = d.path().join("agent.sock");
        let roots = Roots(vec![d.path().join("vc/sbs"), d.path().join("kata")]);
        mgmt::tests::serve(
            &d.path().join("kata"),
            "sb",
            mgmt::tests::ok(&format!("hvsock://{}", vm_sock.display())),
        );

        let mut server = ttrpc::r#async::Server::new()
            .bind(&format!("unix://{}", agent_sock.display()))
            .unwrap()
            .register_service(api::create_agent(Arc::new(Caps)));
        server.start().await.unwrap();

        // The fake VMM: accept, check the port, answer OK, splice to the agent.
        let l = UnixListener::bind(&vm_sock).unwrap();
        let agent = agent_sock.clone();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("CONNECT {}\n", api::VSOCK_PORT));
            let mut s = r.into_inner();
            s.write_all(b"OK 1073741824\n").await.unwrap();
            let mut g = tokio::net::UnixStream::connect(agent).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut s, &mut g).await;
        });

        let client = connect(
            &roots,
            &RemoteHybridVsock::default(),
            "sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let caps = client
            .capabilities(
                api::context_with_timeout(Duration::from_secs(5)),
                &CapabilitiesRequest::new(),
            )
            .await
            .unwrap();
        assert_eq!(caps.api_version, api::API_VERSION);
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn errors_name_the_sandbox_and_the_target() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots(vec![d.path().to_path_buf()]);
        mgmt::tests::serve(
            d.path(),
            "sb",
            mgmt::tests::ok("hvsock:///nonexistent/vm.hvsock:1024"),
        );
        let e = connect(
            &roots,
            &RemoteHybridVsock::default(),
            "sb",
            1029,
            Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        let m = e.to_string();
        assert!(m.contains("sandbox sb"), "{m}");
        assert!(m.contains("hvsock:///nonexistent/vm.hvsock:1029"), "{m}");
    }

    /// Kata's Go shim under the remote driver loses its management socket
    /// while the sandbox runs on (its `delete` binary removes
    /// `/run/vc/sbs/<sid>`): kata-cr-agent is still reached through the
    /// `remote_hybrid_vsock` setting. Without the setting, the error names
    /// the management socket looked for; an id that cannot name a sandbox
    /// never reaches the setting's template.
    #[tokio::test]
    async fn no_management_socket_remote_sandbox_through_the_setting() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots(vec![d.path().join("vc/sbs")]);
        std::fs::create_dir_all(d.path().join("vc/sbs/sb")).unwrap(); // the shim's dir, no socket
        let e = connect(
            &roots,
            &RemoteHybridVsock::default(),
            "sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("no Kata management socket"), "{e}");
        assert!(e.to_string().contains("vc/sbs/sb/shim-monitor.sock"), "{e}");

        let setting = RemoteHybridVsock(format!("{}/vms/{{sandbox}}/vm.vsock", d.path().display()));
        let e = connect(
            &roots,
            &setting,
            "../sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("../sb"), "{e}");
        assert!(!e.to_string().contains("vm.vsock"), "{e}");

        std::fs::create_dir_all(d.path().join("vms/sb")).unwrap();
        let agent_sock = d.path().join("agent.sock");
        let mut server = ttrpc::r#async::Server::new()
            .bind(&format!("unix://{}", agent_sock.display()))
            .unwrap()
            .register_service(api::create_agent(Arc::new(Caps)));
        server.start().await.unwrap();
        let l = UnixListener::bind(d.path().join("vms/sb/vm.vsock")).unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("CONNECT {}\n", api::VSOCK_PORT));
            let mut s = r.into_inner();
            s.write_all(b"OK 1\n").await.unwrap();
            let mut g = tokio::net::UnixStream::connect(agent_sock).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut s, &mut g).await;
        });
        let client = connect(
            &roots,
            &setting,
            "sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let caps = client
            .capabilities(
                api::context_with_timeout(Duration::from_secs(5)),
                &CapabilitiesRequest::new(),
            )
            .await
            .unwrap();
        assert_eq!(caps.api_version, api::API_VERSION);
        server.shutdown().await.unwrap();
    }

    /// Kata's remote hypervisor: the management socket answers `remote://`,
    /// the setting names the sandbox's hybrid vsock, and the agent answers
    /// there; without the setting the error says which one to set.
    #[tokio::test]
    async fn remote_hypervisor_through_the_setting() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots(vec![d.path().join("vc/sbs")]);
        mgmt::tests::serve(
            &d.path().join("vc/sbs"),
            "sb",
            mgmt::tests::ok("remote:///run/peerpod/sb/agent.sock"),
        );
        let e = connect(
            &roots,
            &RemoteHybridVsock::default(),
            "sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("sandbox sb"), "{e}");
        assert!(e.to_string().contains("remote_hybrid_vsock"), "{e}");

        std::fs::create_dir_all(d.path().join("vms/sb")).unwrap();
        let agent_sock = d.path().join("agent.sock");
        let mut server = ttrpc::r#async::Server::new()
            .bind(&format!("unix://{}", agent_sock.display()))
            .unwrap()
            .register_service(api::create_agent(Arc::new(Caps)));
        server.start().await.unwrap();
        let l = UnixListener::bind(d.path().join("vms/sb/vm.vsock")).unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("CONNECT {}\n", api::VSOCK_PORT));
            let mut s = r.into_inner();
            s.write_all(b"OK 1\n").await.unwrap();
            let mut g = tokio::net::UnixStream::connect(agent_sock).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut s, &mut g).await;
        });
        let setting = RemoteHybridVsock(format!("{}/vms/{{sandbox}}/vm.vsock", d.path().display()));
        let client = connect(
            &roots,
            &setting,
            "sb",
            api::VSOCK_PORT,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let caps = client
            .capabilities(
                api::context_with_timeout(Duration::from_secs(5)),
                &CapabilitiesRequest::new(),
            )
            .await
            .unwrap();
        assert_eq!(caps.api_version, api::API_VERSION);
        server.shutdown().await.unwrap();
    }
}
