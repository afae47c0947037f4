//! The service's socket. Kata's remote driver opens one connection per
//! call; each connection is served by its own ttrpc server carrying the
//! caller's pid (SO_PEERCRED), which CreateVM needs: the Kata shim's mount
//! namespace holds the rootfs mounts virtiofsd shares, and the shim's death
//! ends its VM.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use ttrpc::r#async::transport::Listener;
use ttrpc::r#async::{Server, TtrpcContext};

use crate::api::{
    self, CreateVMRequest, CreateVMResponse, StartVMRequest, StartVMResponse, StopVMRequest,
    StopVMResponse, VersionRequest, VersionResponse,
};
use crate::service::Service;

/// Serves until `stop` resolves.
pub async fn serve(
    listener: UnixListener,
    svc: Arc<Service>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    tokio::spawn(serve_connection(s, Arc::clone(&svc)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = &mut stop => return,
        }
    }
}

async fn serve_connection(stream: UnixStream, svc: Arc<Service>) {
    let peer = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .and_then(|p| u32::try_from(p).ok());
    let (closed_tx, closed) = oneshot::channel();
    let conn = Tracked {
        inner: stream,
        _closed: closed_tx,
    };
    let handler = Arc::new(Connection { svc, peer });
    let incoming = Listener::new(futures::stream::iter([Ok::<_, io::Error>(conn)]));
    let mut server = Server::new()
        .add_listener(incoming)
        .register_service(api::create_hypervisor(handler));
    if let Err(e) = server.start().await {
        tracing::warn!(error = %e, "cannot serve a connection");
        return;
    }
    // The server lives as long as its one connection.
    let _ = closed.await;
    drop(server);
}

/// A connection that tells when ttrpc has let go of it.
struct Tracked {
    inner: UnixStream,
    _closed: oneshot::Sender<()>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The calls of one connection, from process `peer`.
struct Connection {
    svc: Arc<Service>,
    peer: Option<u32>,
}

#[async_trait::async_trait]
impl api::Hypervisor for Connection {
    async fn create_vm(
        &self,
        _ctx: &TtrpcContext,
        req: CreateVMRequest,
    ) -> ttrpc::Result<CreateVMResponse> {
        let path = self
            .svc
            .create_vm(self.peer, &req.id, &req.annotations)
            .await?;
        let mut r = CreateVMResponse::new();
        r.agentSocketPath = path;
        Ok(r)
    }

    async fn start_vm(
        &self,
        _ctx: &TtrpcContext,
        req: StartVMRequest,
    ) -> ttrpc::Result<StartVMResponse> {
        self.svc.start_vm(&req.id).await?;
        Ok(StartVMResponse::new())
    }

    async fn stop_vm(
        &self,
        _ctx: &TtrpcContext,
        req: StopVMRequest,
    ) -> ttrpc::Result<StopVMResponse> {
        self.svc.stop_vm(&req.id).await;
        Ok(StopVMResponse::new())
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: VersionRequest,
    ) -> ttrpc::Result<VersionResponse> {
        let mut r = VersionResponse::new();
        r.version = format!("kata-cr-remote-hypervisor {}", env!("CARGO_PKG_VERSION"));
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ttrpc::r#async::Client;

    use super::*;
    use crate::options::{parse, Mode};

    struct Nothing;
    impl api::Hypervisor for Nothing {}

    #[test]
    fn generated_service_registers_every_method() {
        let services = api::create_hypervisor(Arc::new(Nothing));
        let service = services
            .get(api::SERVICE)
            .expect("registered by its full name");
        let mut got: Vec<&str> = service.methods.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = api::METHODS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    /// Kata's calls over ttrpc, one connection each as its driver makes them:
    /// the peer's pid reaches CreateVM, errors come back as statuses.
    #[tokio::test]
    async fn kata_calls_over_ttrpc() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("hypervisor.sock");
        let state = d.path().join("state");
        let args = [
            "--kernel",
            "/nonexistent/vmlinuz",
            "--initrd",
            "/nonexistent/initrd",
            "--state-dir",
            &state.to_string_lossy(),
            "--shared-root",
            "/nonexistent/sandboxes",
        ];
        let Mode::Serve(o) = parse(args.iter().map(|s| s.to_string())).unwrap() else {
            unreachable!()
        };
        let svc = Service::new(*o);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            UnixListener::bind(&sock).unwrap(),
            Arc::clone(&svc),
            async {
                let _ = stop_rx.await;
            },
        ));
        let addr = format!("unix://{}", sock.display());
        let client = || async { api::HypervisorClient::new(Client::connect(&addr).await.unwrap()) };
        let ctx = || ttrpc::context::with_timeout(5_000_000_000);

        let v = client()
            .await
            .version(ctx(), &VersionRequest::new())
            .await
            .unwrap();
        assert!(
            v.version.starts_with("kata-cr-remote-hypervisor "),
            "{}",
            v.version
        );

        let mut req = CreateVMRequest::new();
        req.id = "sb".into();
        req.annotations = HashMap::from([(
            "io.katacontainers.config.hypervisor.default_memory".to_string(),
            "512".to_string(),
        )]);
        let r = client().await.create_vm(ctx(), &req).await.unwrap();
        assert_eq!(
            r.agentSocketPath,
            state.join("sb/agent.sock").to_string_lossy()
        );

        let mut req = StartVMRequest::new();
        req.id = "sb".into();
        match client().await.start_vm(ctx(), &req).await.unwrap_err() {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), ttrpc::Code::UNAVAILABLE);
                assert!(s.message().contains("sandbox sb"), "{}", s.message());
            }
            e => panic!("{e:?}"),
        }

        let mut req = StopVMRequest::new();
        req.id = "sb".into();
        client().await.stop_vm(ctx(), &req).await.unwrap();
        assert!(!state.join("sb").exists());
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
