//! The interception points, all in one place. Every request enters `route`;
//! the few that kata-cr changes are dispatched to an inherent async fn here,
//! everything else goes to the inner shim untouched.
//!
//! Intercepted today:
//! - `Create`: kata-cr-init becomes the container's PID 1 (the bundle's
//!   config.json), runtime options naming kata-cr's config are rewritten to
//!   name the inner shim's (the same rewrite `start` applies to its stdin),
//!   and the container's bundle and upperdir are remembered.
//! - `Checkpoint`: kata-cr-agent dumps the workload, the image set is staged
//!   into the request's path (see `checkpoint`).
//! - `Delete`: forgets the container.

use protobuf::Message;
use ttrpc::{Request, Response};

use containerd_shim_protos::api::{CheckpointTaskRequest, CreateTaskRequest, DeleteRequest};
use protobuf::well_known_types::empty::Empty;

use crate::agent_backend::AgentBackend;
use crate::checkpoint::{self, InProgress};
use crate::config::Config;
use crate::containers::{Container, Registry};
use crate::error::Error;
use crate::forward::{is_task_service, status_response, Inner};
use crate::runtime_options::RuntimeOptions;
use crate::spec_rewrite;
use crate::start::rewrite_options;

pub struct Router {
    inner: Inner,
    config: Config,
    containers: Registry,
    agent: AgentBackend,
    checkpoints: InProgress,
}

impl Router {
    pub fn new(inner: Inner, config: Config) -> Self {
        Router {
            agent: AgentBackend::from_config(&config),
            inner,
            config,
            containers: Registry::default(),
            checkpoints: InProgress::default(),
        }
    }

    pub async fn route(&self, req: Request) -> Response {
        if is_task_service(&req.service) {
            match req.method.as_str() {
                "Create" => return self.create(req).await,
                "Delete" => return self.delete(req).await,
                "Checkpoint" => return self.checkpoint(req).await,
                _ => {}
            }
        }
        self.inner.forward(req).await
    }

    async fn create(&self, mut req: Request) -> Response {
        let mut create = match CreateTaskRequest::parse_from_bytes(&req.payload) {
            Ok(c) => c,
            Err(e) => {
                let e = Error::InvalidArgument(format!("decode CreateTaskRequest: {e}"));
                return status_response(e.to_status());
            }
        };
        tracing::info!(id = %create.id, bundle = %create.bundle, restore = !create.checkpoint.is_empty(), "create");
        let wrapped = match self.wrap(&create) {
            Ok(w) => w,
            Err(e) => return status_response(e.to_status()),
        };
        if self.rewrite_create_options(&mut create) {
            req.payload = create.write_to_bytes().expect("decoded message re-encodes");
        }
        let resp = self.inner.forward(req).await;
        if is_ok(&resp) {
            self.containers
                .insert(Container::from_create(&create, wrapped));
        }
        resp
    }

    fn wrap(&self, create: &CreateTaskRequest) -> Result<bool, Error> {
        let init = self.config.init_binary_path()?;
        let outcome = spec_rewrite::wrap_bundle(std::path::Path::new(&create.bundle), &init)
            .map_err(|e| Error::FailedPrecondition(format!("container {}: {e}", create.id)))?;
        Ok(outcome != spec_rewrite::Outcome::Sandbox)
    }

    async fn checkpoint(&self, req: Request) -> Response {
        let ck = match CheckpointTaskRequest::parse_from_bytes(&req.payload) {
            Ok(c) => c,
            Err(e) => {
                let e = Error::InvalidArgument(format!("decode CheckpointTaskRequest: {e}"));
                return status_response(e.to_status());
            }
        };
        tracing::info!(id = %ck.id, path = %ck.path, "checkpoint");
        match checkpoint::checkpoint(&self.agent, &self.containers, &self.checkpoints, &ck).await {
            Ok(()) => {
                let mut r = Response::new();
                r.payload = Empty::new().write_to_bytes().expect("empty message");
                r
            }
            Err(e) => {
                tracing::error!(id = %ck.id, error = %e, "checkpoint failed");
                status_response(e.to_status())
            }
        }
    }

    async fn delete(&self, req: Request) -> Response {
        let id = DeleteRequest::parse_from_bytes(&req.payload)
            .ok()
            .filter(|d| d.exec_id.is_empty())
            .map(|d| d.id);
        let resp = self.inner.forward(req).await;
        if let Some(id) = id {
            if is_ok(&resp) {
                self.containers.remove(&id);
            }
        }
        resp
    }

    /// Returns whether the request changed.
    fn rewrite_create_options(&self, create: &mut CreateTaskRequest) -> bool {
        let Some(any) = create.options.as_ref() else {
            return false;
        };
        let Ok(Some(opts)) = RuntimeOptions::from_any(any) else {
            return false;
        };
        match rewrite_options(&opts, &self.config) {
            Some(o) if o == opts => false,
            Some(o) => {
                let mut a = any.clone();
                a.value = o.encode();
                create.options = protobuf::MessageField::some(a);
                true
            }
            None => {
                create.options = protobuf::MessageField::none();
                true
            }
        }
    }
}

fn is_ok(resp: &Response) -> bool {
    resp.status
        .as_ref()
        .is_none_or(|s| s.code() == ttrpc::Code::OK)
}
