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
//! - `Create` with a checkpoint and the following `Start`: restore as a
//!   deferred create (see `restore`).
//! - `Delete`: forgets the container.

use protobuf::Message;
use ttrpc::{Request, Response};

use containerd_shim_protos::api::{
    CheckpointTaskRequest, CreateTaskRequest, DeleteRequest, ExecProcessRequest, KillRequest,
    StartRequest,
};
use protobuf::well_known_types::empty::Empty;

use crate::agent_backend::AgentBackend;
use crate::checkpoint::{self, InProgress};
use crate::config::Config;
use crate::containers::{Container, Registry};
use crate::error::Error;
use crate::forward::{is_task_service, status_response, Inner};
use crate::runtime_options::RuntimeOptions;
use crate::spec_rewrite::{self, InitMode};
use crate::start::rewrite_options;
use crate::{restore, staging};

pub struct Router {
    inner: Inner,
    config: Config,
    containers: Registry,
    /// Containers whose Start is restoring: exec waits for the workload.
    restoring: std::sync::Mutex<std::collections::HashSet<String>>,
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
            restoring: Default::default(),
            checkpoints: InProgress::default(),
        }
    }

    pub async fn route(&self, req: Request) -> Response {
        if is_task_service(&req.service) {
            match req.method.as_str() {
                "Create" => return self.create(req).await,
                "Delete" => return self.delete(req).await,
                "Checkpoint" => return self.checkpoint(req).await,
                "Start" => return self.start(req).await,
                "Exec" => {
                    if let Some(resp) = self.refuse_exec_while_restoring(&req) {
                        return resp;
                    }
                }
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
        let restoring = restore::checkpoint_dir(&create.checkpoint);
        tracing::info!(id = %create.id, bundle = %create.bundle, restore = restoring.is_some(), "create");
        let mode = match restoring {
            Some(_) => InitMode::Restore,
            None => InitMode::Run,
        };
        let wrapped = match self.wrap(&create, mode) {
            Ok(w) => w,
            Err(e) => return status_response(e.to_status()),
        };
        let mut container = Container::from_create(&create, wrapped);
        let mut changed = rewrite_create_options(&mut create, &self.config);
        if let Some(dir) = &restoring {
            if !wrapped {
                let e = Error::FailedPrecondition(format!(
                    "container {}: a pod sandbox is not restored from a checkpoint",
                    create.id
                ));
                return status_response(e.to_status());
            }
            match restore::prepare(&self.agent, &container, dir).await {
                Ok(name) => container.restore_pending = Some(name),
                Err(e) => return status_response(e.to_status()),
            }
            // The inner shim creates an ordinary task; kata-cr restores at Start.
            create.checkpoint.clear();
            create.parent_checkpoint.clear();
            changed = true;
        }
        if changed {
            req.payload = create.write_to_bytes().expect("decoded message re-encodes");
        }
        let resp = self.inner.forward(req).await;
        if is_ok(&resp) {
            self.containers.insert(container);
        } else if let (Some(name), Some(upper)) = (
            &container.restore_pending,
            self.agent.host_upper(&container),
        ) {
            let _ = staging::remove_set(&upper, name);
        }
        resp
    }

    fn wrap(&self, create: &CreateTaskRequest, mode: InitMode) -> Result<bool, Error> {
        let init = self.config.init_binary_path()?;
        let outcome = spec_rewrite::wrap_bundle(std::path::Path::new(&create.bundle), &init, mode)
            .map_err(|e| Error::FailedPrecondition(format!("container {}: {e}", create.id)))?;
        Ok(outcome != spec_rewrite::Outcome::Sandbox)
    }

    /// Start of a container created from a checkpoint: the inner shim starts
    /// kata-cr-init (restore mode), then the agent restores the workload as
    /// its child. Start answers only when the workload runs; if the restore
    /// fails, the task is killed so that nothing stays half-alive.
    async fn start(&self, req: Request) -> Response {
        let Ok(sr) = StartRequest::parse_from_bytes(&req.payload) else {
            return self.inner.forward(req).await;
        };
        let pending = if sr.exec_id.is_empty() {
            self.containers.take_restore(&sr.id)
        } else {
            None
        };
        let Some((c, image_dir)) = pending else {
            return self.inner.forward(req).await;
        };
        self.restoring
            .lock()
            .expect("restoring lock")
            .insert(c.id.clone());
        let resp = self.inner.forward(req).await;
        if !is_ok(&resp) {
            self.restoring.lock().expect("restoring lock").remove(&c.id);
            if let Some(upper) = self.agent.host_upper(&c) {
                let _ = staging::remove_set(&upper, &image_dir);
            }
            return resp;
        }
        let restored = restore::restore(&self.agent, &c, &image_dir).await;
        self.restoring.lock().expect("restoring lock").remove(&c.id);
        match restored {
            Ok(_) => resp,
            Err(e) => {
                tracing::error!(id = %c.id, error = %e, "restore failed; killing the task");
                self.kill_all(&c.id).await;
                status_response(e.to_status())
            }
        }
    }

    /// While the init waits for its workload, a process exec'd into the
    /// container could pose as the restored workload: no exec until then.
    fn refuse_exec_while_restoring(&self, req: &Request) -> Option<Response> {
        let id = ExecProcessRequest::parse_from_bytes(&req.payload).ok()?.id;
        if !self.restoring.lock().expect("restoring lock").contains(&id) {
            return None;
        }
        let e = Error::FailedPrecondition(format!(
            "container {id} is being restored; exec after Start returns"
        ));
        Some(status_response(e.to_status()))
    }

    async fn kill_all(&self, id: &str) {
        let mut k = KillRequest::new();
        k.id = id.to_string();
        k.signal = 9;
        k.all = true;
        let mut req = Request::new();
        req.service = crate::forward::TASK_V3.to_string();
        req.method = "Kill".into();
        req.payload = k.write_to_bytes().expect("plain message");
        req.timeout_nano = 10_000_000_000;
        let resp = self.inner.forward(req).await;
        if !is_ok(&resp) {
            tracing::warn!(id, status = ?resp.status, "kill after a failed restore");
        }
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
        match checkpoint::checkpoint(
            &self.agent,
            &self.containers,
            &self.checkpoints,
            &self.config.criu,
            &ck,
        )
        .await
        {
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
}

/// The options the inner shim's Create gets; returns whether the request
/// changed. An options Any with an empty type URL (containerd's restore
/// sends one) is dropped: it carries nothing, and Kata's Create refuses it
/// ("type with url : not found").
fn rewrite_create_options(create: &mut CreateTaskRequest, cfg: &Config) -> bool {
    let Some(any) = create.options.as_ref() else {
        return false;
    };
    if any.type_url.is_empty() {
        create.options = protobuf::MessageField::none();
        return true;
    }
    let Ok(Some(opts)) = RuntimeOptions::from_any(any) else {
        return false;
    };
    match rewrite_options(&opts, cfg) {
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

fn is_ok(resp: &Response) -> bool {
    resp.status
        .as_ref()
        .is_none_or(|s| s.code() == ttrpc::Code::OK)
}

#[cfg(test)]
mod tests {
    use protobuf::well_known_types::any::Any;

    use super::*;

    fn create_with(type_url: &str, value: &[u8]) -> CreateTaskRequest {
        let mut any = Any::new();
        any.type_url = type_url.into();
        any.value = value.to_vec();
        let mut c = CreateTaskRequest::new();
        c.id = "c1".into();
        c.options = protobuf::MessageField::some(any);
        c
    }

    #[test]
    fn an_empty_options_any_never_reaches_the_inner_shim() {
        // containerd's restore (ctr c restore, CRI create from a checkpoint)
        let mut c = create_with("", b"");
        assert!(rewrite_create_options(&mut c, &Config::default()));
        assert!(c.options.is_none());
        let mut c = create_with("", b"\x0a\x01x");
        assert!(rewrite_create_options(&mut c, &Config::default()));
        assert!(c.options.is_none());
    }

    #[test]
    fn other_options_are_kept_or_rewritten() {
        let mut none = CreateTaskRequest::new();
        assert!(!rewrite_create_options(&mut none, &Config::default()));
        let mut runc = create_with("containerd.runc.v1.Options", b"\x10\x01");
        assert!(!rewrite_create_options(&mut runc, &Config::default()));
        assert_eq!(runc.options.type_url, "containerd.runc.v1.Options");
        let ours = RuntimeOptions {
            config_path: "/etc/kata-cr/config.toml".into(),
            ..Default::default()
        };
        let cfg = Config {
            source: "/etc/kata-cr/config.toml".into(),
            ..Default::default()
        };
        let mut c = create_with("runtimeoptions.v1.Options", &ours.encode());
        assert!(rewrite_create_options(&mut c, &cfg));
        assert!(
            c.options.is_none(),
            "our config path, nothing left for Kata"
        );
    }
}
