//! The proxy server process: one per pod, started by `start` with the
//! listening socket as fd 3. It connects to the inner shim, serves the
//! forwarder, and exits when the inner shim exits (no orphan proxies). It
//! does not depend on containerd staying up: after a containerd restart,
//! containerd reconnects to the same socket from the bundle's records.

use std::collections::HashMap;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};
use ttrpc::r#async::transport::Listener;
use ttrpc::r#async::{MethodHandler, Server, Service, TtrpcContext};
use ttrpc::{Request, Response};

use crate::config::Config;
use crate::cr::agent::AgentBackend;
use crate::error::{Error, IoContext, Result};
use crate::proxy::forward::{Inner, SANDBOX_METHODS, SANDBOX_V1, TASK_METHODS, TASK_V2, TASK_V3};
use crate::proxy::intercept::Router;

/// The hidden first argument with which `start` runs the proxy server; the
/// second is the [`ServeParams`] as JSON.
pub const ACTION: &str = "__kata-cr-serve";

/// The fd number the listening socket has in the server process.
pub const LISTENER_FD: i32 = 3;

/// What `start` tells the server it launches. `id` comes first: the test
/// suites find a pod's proxy by `"id":"<id>"` on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeParams {
    /// The container whose start created the proxy: the pod's sandbox, or a
    /// plain container (its bundle is named by this id).
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub socket: PathBuf,
    /// The inner shim's ttrpc address and task API version.
    pub inner_address: String,
    pub inner_version: i32,
    pub debug: bool,
    pub config: Config,
}

pub fn run(json: &str) -> Result<()> {
    let params: ServeParams = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("serve parameters: {e}")))?;
    crate::logging::init(&params.bundle, params.debug);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "tokio runtime".into())?;
    let res = rt.block_on(serve(&params));
    let _ = std::fs::remove_file(&params.socket);
    // The process exits next; tearing the runtime down would only wait on
    // connection tasks that containerd may keep open.
    std::mem::forget(rt);
    if let Err(e) = &res {
        tracing::error!(error = %e, "proxy server failed");
    }
    res
}

async fn serve(p: &ServeParams) -> Result<()> {
    let (inner, probe) = Inner::connect(&p.inner_address, p.inner_version)?;
    let lost = inner.lost();
    // The proxy serves one pod: in Kata mode its agent is in the guest of
    // the sandbox that created the proxy.
    let agent = AgentBackend::from_config(&p.config).for_sandbox(&p.id);
    let router = Arc::new(Router::new(inner, p.config.clone(), agent));

    // SAFETY: `start` placed our listening socket at LISTENER_FD and nothing
    // else owns it.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(LISTENER_FD) };
    std_listener
        .set_nonblocking(true)
        .ctx(|| "listener".into())?;
    let listener =
        Listener::from(tokio::net::UnixListener::from_std(std_listener).ctx(|| "listener".into())?);
    let mut server = proxy_server(listener, router);
    server.start().await?;
    tracing::info!(id = %p.id, namespace = %p.namespace, inner = %p.inner_address, socket = %p.socket.display(), "kata-cr proxy serving");

    let exited = wait_closed(probe);
    let mut term = signal(SignalKind::terminate()).ctx(|| "SIGTERM handler".into())?;
    let mut int = signal(SignalKind::interrupt()).ctx(|| "SIGINT handler".into())?;
    tokio::select! {
        r = exited => { r?; tracing::info!("inner shim exited; proxy exits"); }
        _ = lost.notified() => tracing::info!("inner shim connection lost; proxy exits"),
        _ = term.recv() => tracing::info!("SIGTERM; proxy exits"),
        _ = int.recv() => tracing::info!("SIGINT; proxy exits"),
    }
    Ok(())
}

pub fn proxy_server(listener: Listener, router: Arc<Router>) -> Server {
    Server::new()
        .add_listener(listener)
        .register_service(services(router))
}

/// Every method of the task (v2 and v3) and sandbox services, each handed
/// to the router.
fn services(router: Arc<Router>) -> HashMap<String, Service> {
    HashMap::from([
        (TASK_V2.to_string(), service(TASK_METHODS, &router)),
        (TASK_V3.to_string(), service(TASK_METHODS, &router)),
        (SANDBOX_V1.to_string(), service(SANDBOX_METHODS, &router)),
    ])
}

fn service(methods: &[&str], router: &Arc<Router>) -> Service {
    let methods = methods
        .iter()
        .map(|m| {
            let h: Box<dyn MethodHandler + Send + Sync> = Box::new(Handler(router.clone()));
            (m.to_string(), h)
        })
        .collect();
    Service {
        methods,
        streams: HashMap::new(),
    }
}

struct Handler(Arc<Router>);

#[async_trait]
impl MethodHandler for Handler {
    async fn handler(&self, _ctx: TtrpcContext, req: Request) -> ttrpc::Result<Response> {
        Ok(self.0.route(req).await)
    }
}

/// Resolves when the inner shim is gone. An idle second connection sees EOF
/// when the process holding the other end exits; the pid of the listener
/// cannot be used, since shims create their socket in the short-lived start
/// process and hand it to the server.
async fn wait_closed(mut probe: tokio::net::UnixStream) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    loop {
        match probe.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use containerd_shim_protos::api::{KillRequest, StateRequest, StateResponse};
    use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
    use containerd_shim_protos::shim_async::{create_task, Task, TaskClient};
    use protobuf::Message;
    use ttrpc::r#async::Client;
    use ttrpc::Code;

    use super::*;

    /// An inner shim that answers State with what it saw and refuses Kill.
    struct FakeInner;

    #[async_trait]
    impl Task for FakeInner {
        async fn state(
            &self,
            ctx: &TtrpcContext,
            req: StateRequest,
        ) -> ttrpc::Result<StateResponse> {
            let mut r = StateResponse::new();
            r.id = req.id;
            r.pid = 42;
            r.stdin = ctx
                .metadata
                .get("k")
                .map(|v| v.join(","))
                .unwrap_or_default();
            r.stdout = ctx.timeout_nano.to_string();
            Ok(r)
        }
        async fn kill(&self, _: &TtrpcContext, _: KillRequest) -> ttrpc::Result<Empty> {
            Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                Code::NOT_FOUND,
                "process 7 not found",
            )))
        }
    }

    async fn start_pair(dir: &std::path::Path) -> (Server, Server, Client) {
        let inner_sock = format!("unix://{}/inner.sock", dir.display());
        let mut inner = Server::new()
            .bind(&inner_sock)
            .unwrap()
            .register_service(create_task(Arc::new(FakeInner)));
        inner.start().await.unwrap();
        let to_inner = Client::connect(&inner_sock).await.unwrap();
        let cfg = Config::default();
        let agent = AgentBackend::from_config(&cfg);
        let router = Arc::new(Router::new(Inner::new(to_inner, 3), cfg, agent));
        let proxy_sock = format!("unix://{}/proxy.sock", dir.display());
        let mut proxy = proxy_server(Listener::bind(&proxy_sock).unwrap(), router);
        proxy.start().await.unwrap();
        let client = Client::connect(&proxy_sock).await.unwrap();
        (inner, proxy, client)
    }

    #[tokio::test]
    async fn requests_and_statuses_cross_the_proxy_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (_inner, _proxy, client) = start_pair(dir.path()).await;
        let tc = TaskClient::new(client.clone());
        let mut ctx = ttrpc::context::with_timeout(5_000_000_000);
        ctx.add("k".into(), "v1".into());
        let mut req = StateRequest::new();
        req.id = "c1".into();
        let r = tc.state(ctx, &req).await.unwrap();
        assert_eq!((r.id.as_str(), r.pid), ("c1", 42));
        assert_eq!(r.stdin, "v1", "metadata reaches the inner shim");
        assert_eq!(r.stdout, "5000000000", "deadline reaches the inner shim");

        let err = tc
            .kill(ttrpc::context::with_timeout(0), &KillRequest::new())
            .await
            .unwrap_err();
        match err {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), Code::NOT_FOUND);
                assert_eq!(s.message(), "process 7 not found");
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    #[tokio::test]
    async fn task_v2_callers_reach_a_v3_inner_shim() {
        let dir = tempfile::tempdir().unwrap();
        let (_inner, _proxy, client) = start_pair(dir.path()).await;
        let mut req = ttrpc::Request::new();
        req.service = crate::proxy::forward::TASK_V2.into();
        req.method = "State".into();
        let mut sr = StateRequest::new();
        sr.id = "v2".into();
        req.payload = sr.write_to_bytes().unwrap();
        let resp = client.request(req).await.unwrap();
        let r = StateResponse::parse_from_bytes(&resp.payload).unwrap();
        assert_eq!(r.id, "v2");
    }

    #[tokio::test]
    async fn unknown_methods_answer_like_the_inner_would() {
        let dir = tempfile::tempdir().unwrap();
        let (_inner, _proxy, client) = start_pair(dir.path()).await;
        let mut req = ttrpc::Request::new();
        req.service = crate::proxy::forward::SANDBOX_V1.into();
        req.method = "PingSandbox".into();
        let err = client.request(req).await.unwrap_err();
        match err {
            ttrpc::Error::RpcStatus(s) => {
                // The fake serves no sandbox service: its own answer comes back.
                assert_eq!(s.code(), Code::INVALID_ARGUMENT);
                assert!(
                    s.message().contains("service does not exist"),
                    "{}",
                    s.message()
                );
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    #[tokio::test]
    async fn wait_closed_resolves_when_the_inner_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inner.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let probe = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let waiter = tokio::spawn(wait_closed(probe));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "an idle inner shim is not an exit");
        drop(accepted);
        drop(listener);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("EOF reported")
            .unwrap()
            .unwrap();
    }
}
