//! The byte-for-byte forwarder: every method of the task (v2 and v3) and
//! sandbox services, registered by name, passes the raw request to the inner
//! shim with its metadata and deadline, and returns the inner response (or
//! its status, code and message intact). Only the service name is rewritten
//! when containerd and the inner shim speak different task API versions.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use ttrpc::r#async::transport::Socket;
use ttrpc::r#async::Client;
use ttrpc::{Code, Request, Response, Status};

use crate::error::{Error, IoContext, Result};

pub const TASK_V2: &str = "containerd.task.v2.Task";
pub const TASK_V3: &str = "containerd.task.v3.Task";
pub const SANDBOX_V1: &str = "containerd.runtime.sandbox.v1.Sandbox";

/// Every method of `containerd.task.v{2,3}.Task`. A method missing here would
/// answer UNIMPLEMENTED instead of reaching the inner shim; a test compares
/// this list with the generated service.
pub const TASK_METHODS: &[&str] = &[
    "State",
    "Create",
    "Start",
    "Delete",
    "Pids",
    "Pause",
    "Resume",
    "Checkpoint",
    "Kill",
    "Exec",
    "ResizePty",
    "CloseIO",
    "Update",
    "Wait",
    "Stats",
    "Connect",
    "Shutdown",
];

/// Every method of `containerd.runtime.sandbox.v1.Sandbox`.
pub const SANDBOX_METHODS: &[&str] = &[
    "CreateSandbox",
    "StartSandbox",
    "Platform",
    "StopSandbox",
    "WaitSandbox",
    "SandboxStatus",
    "PingSandbox",
    "ShutdownSandbox",
    "SandboxMetrics",
];

pub fn is_task_service(service: &str) -> bool {
    service == TASK_V2 || service == TASK_V3
}

pub fn task_service_for(version: i32) -> &'static str {
    if version >= 3 {
        TASK_V3
    } else {
        TASK_V2
    }
}

/// The connection to the inner shim.
pub struct Inner {
    client: Client,
    task_service: &'static str,
    lost: Arc<tokio::sync::Notify>,
}

impl Inner {
    /// Connects to the inner shim at its ttrpc `address`; also returns a
    /// second, idle connection whose EOF tells that the inner shim exited.
    pub fn connect(address: &str, task_api_version: i32) -> Result<(Self, tokio::net::UnixStream)> {
        let stream = connect_unix(address)?;
        let probe = connect_unix(address)?;
        let client = Client::new(Socket::from(stream));
        Ok((Inner::new(client, task_api_version), probe))
    }

    pub fn new(client: Client, task_api_version: i32) -> Self {
        Inner {
            client,
            task_service: task_service_for(task_api_version),
            lost: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified when the connection to the inner shim broke mid-request.
    pub fn lost(&self) -> Arc<tokio::sync::Notify> {
        self.lost.clone()
    }

    pub async fn forward(&self, mut req: Request) -> Response {
        if is_task_service(&req.service) {
            req.service = self.task_service.to_string();
        }
        match self.client.request(req).await {
            Ok(resp) => resp,
            Err(ttrpc::Error::RpcStatus(s)) => status_response(s),
            Err(
                ttrpc::Error::RemoteClosed | ttrpc::Error::LocalClosed | ttrpc::Error::Socket(_),
            ) => {
                // The inner shim went away (as after Shutdown). containerd must
                // see what it sees without a proxy: a closed connection, not an
                // answer. The server exits on this notification.
                self.lost.notify_one();
                std::future::pending().await
            }
            Err(e) => status_response(ttrpc::get_status(
                Code::UNAVAILABLE,
                format!("kata-cr: inner shim unreachable: {e}"),
            )),
        }
    }
}

pub fn status_response(status: Status) -> Response {
    let mut r = Response::new();
    r.set_status(status);
    r
}

/// A non-blocking connection to a ttrpc unix address (`unix:///path` or
/// `unix://@abstract`).
fn connect_unix(address: &str) -> Result<tokio::net::UnixStream> {
    let rest = address
        .strip_prefix("unix://")
        .ok_or_else(|| Error::InvalidArgument(format!("unsupported inner address {address}")))?;
    let stream = match rest.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .ctx(|| format!("address {address}"))?;
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(rest),
    }
    .ctx(|| format!("connect {address}"))?;
    stream
        .set_nonblocking(true)
        .ctx(|| format!("connect {address}"))?;
    tokio::net::UnixStream::from_std(stream).ctx(|| format!("connect {address}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use containerd_shim_protos::shim_async::{create_task, Task};

    use super::*;

    struct Nothing;
    impl Task for Nothing {}

    #[test]
    fn every_generated_task_method_is_forwarded() {
        let generated = create_task(Arc::new(Nothing));
        let svc = generated.get(TASK_V3).expect("v3 task service");
        let gen: BTreeSet<_> = svc.methods.keys().cloned().collect();
        let ours: BTreeSet<_> = TASK_METHODS.iter().map(|s| s.to_string()).collect();
        assert_eq!(gen, ours);
        assert_eq!(TASK_METHODS.len(), 17);
    }

    #[test]
    fn sandbox_methods_match_the_proto() {
        let proto = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/sandbox-v1-rpcs.txt"
        ));
        let listed: BTreeSet<_> = proto.split_whitespace().collect();
        let ours: BTreeSet<_> = SANDBOX_METHODS.iter().copied().collect();
        assert_eq!(listed, ours);
    }

    #[tokio::test]
    async fn only_unix_addresses_reach_an_inner_shim() {
        let e = Inner::connect("vsock://3:1024", 3).err().unwrap();
        assert_eq!(e.code(), Code::INVALID_ARGUMENT);
        let e = Inner::connect("unix:///nonexistent/inner.sock", 3)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/inner.sock"), "{e}");
    }

    #[test]
    fn versions_map_to_service_names() {
        assert_eq!(task_service_for(2), TASK_V2);
        assert_eq!(task_service_for(3), TASK_V3);
        assert!(is_task_service(TASK_V2) && !is_task_service(SANDBOX_V1));
    }
}
