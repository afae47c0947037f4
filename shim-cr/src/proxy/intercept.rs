//! The interception table. Every request enters [`Router::route`]; the few
//! that kata-cr changes go to an inherent async fn here, everything else to
//! the inner shim untouched.
//!
//! | request    | what kata-cr does |
//! |------------|-------------------|
//! | Create     | kata-cr-init becomes PID 1 (the bundle's config.json); runtime options naming kata-cr's config name the inner shim's (as `start` does on its stdin), an options Any with an empty type URL is dropped (Kata refuses it); with a checkpoint, the image set is staged into the rootfs and the init waits in restore mode. The container is registered as Sandbox, Created or RestorePending. |
//! | Start      | of a RestorePending container: the inner shim starts the init, then kata-cr-agent restores the workload as its child (restore as a deferred create, see `cr::restore`); a failed restore kills the task. Refused while restoring and after a failed restore. |
//! | Checkpoint | kata-cr-agent dumps the workload, the image set is staged into the request's path (see `cr::checkpoint`); with `--exit` the agent ends the workload and the container is EndedByCheckpoint. |
//! | Resume     | of an EndedByCheckpoint container: refused as runc's shim refuses to resume a stopped container, not forwarded (Kata would mark the task UNKNOWN). |
//! | Exec       | refused while the container is restoring; into a container created from a checkpoint, kata-cr-init sets the exec's capabilities first (see `cr::exec_guard`). |
//! | Pause, Resume | recorded: a checkpoint never leaves the task frozen (see `unpause`); a Resume during a checkpoint waits for its end. |
//! | Delete     | the container is forgotten (with its staged image set if it was never restored). |
//!
//! The states and their transitions are in `state`. Create, Start,
//! Checkpoint, Delete, Pause and Resume run in tasks of their own: ttrpc drops a handler's
//! future when the caller's connection closes, and an operation cut there
//! would leave a state held or an image set behind. The handler only
//! awaits the task's answer.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Instant;

use containerd_shim_protos::api::{
    CheckpointTaskRequest, CreateTaskRequest, DeleteRequest, ExecProcessRequest, KillRequest,
    PauseRequest, ResumeRequest, StartRequest,
};
use protobuf::well_known_types::empty::Empty;
use protobuf::Message;
use ttrpc::{Request, Response};

use crate::config::Config;
use crate::cr::agent::AgentBackend;
use crate::cr::container::Container;
use crate::cr::spec_rewrite::{self, InitMode};
use crate::cr::{checkpoint, exec_guard, restore, staging};
use crate::error::{Error, Result};
use crate::proxy::containers::{invalid, Registry};
use crate::proxy::forward::{is_task_service, status_response, Inner, TASK_V3};
use crate::proxy::state::{StartPlan, State};
use crate::proxy::unpause::{self, Timing};
use crate::runtime_options::{self, ForInner, RuntimeOptions};

/// How long the kill after a failed restore may take.
const KILL_TIMEOUT_NANOS: i64 = 10_000_000_000;

pub struct Router {
    inner: Inner,
    config: Config,
    containers: Registry,
    agent: AgentBackend,
    timing: Timing,
}

/// Whether the caller of a detached operation still waits for its answer
/// (ttrpc drops the handler at the request's deadline or when the
/// connection closes).
pub struct Caller(Weak<()>);

impl Caller {
    pub fn gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl Router {
    pub fn new(inner: Inner, config: Config, agent: AgentBackend) -> Self {
        Router {
            inner,
            config,
            containers: Registry::default(),
            agent,
            timing: Timing::default(),
        }
    }

    #[cfg(test)]
    fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The table: which requests kata-cr handles, and how.
    pub async fn route(self: &Arc<Self>, req: Request) -> Response {
        if !is_task_service(&req.service) {
            return self.inner.forward(req).await;
        }
        match req.method.as_str() {
            "Create" => {
                self.detached(req, |r, q, _| async move { r.create(q).await })
                    .await
            }
            "Start" => {
                self.detached(req, |r, q, _| async move { r.start(q).await })
                    .await
            }
            "Checkpoint" => {
                self.detached(req, |r, q, c| async move { r.checkpoint(q, c).await })
                    .await
            }
            "Delete" => {
                self.detached(req, |r, q, _| async move { r.delete(q).await })
                    .await
            }
            "Pause" => {
                self.detached(req, |r, q, _| async move { r.pause(q).await })
                    .await
            }
            "Resume" => match self.refuse_resume_after_exit(&req) {
                Some(refused) => refused,
                None => {
                    self.detached(req, |r, q, _| async move { r.resume(q).await })
                        .await
                }
            },
            "Exec" => match self.refuse_exec_while_restoring(&req) {
                Some(refused) => refused,
                None => match self.guard_exec(req) {
                    Ok(req) => self.inner.forward(req).await,
                    Err(e) => status_response(e.to_status()),
                },
            },
            _ => self.inner.forward(req).await,
        }
    }

    /// Runs `op` in a task of its own, so that it finishes (or undoes
    /// itself) even when the caller goes away and its handler is dropped;
    /// `op` can tell whether that happened ([`Caller`]).
    async fn detached<F, Fut>(self: &Arc<Self>, req: Request, op: F) -> Response
    where
        F: FnOnce(Arc<Router>, Request, Caller) -> Fut,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let method = req.method.clone();
        let waiting = Arc::new(());
        let caller = Caller(Arc::downgrade(&waiting));
        let answer = match tokio::spawn(op(self.clone(), req, caller)).await {
            Ok(answer) => answer,
            Err(source) => Err(Error::Task {
                what: "kata-cr operation",
                source,
            }),
        };
        drop(waiting);
        answer.unwrap_or_else(|e| {
            tracing::error!(method, error = %e, "request failed");
            status_response(e.to_status())
        })
    }

    async fn create(&self, mut req: Request) -> Result<Response> {
        let mut create = CreateTaskRequest::parse_from_bytes(&req.payload)
            .map_err(|e| Error::InvalidArgument(format!("decode CreateTaskRequest: {e}")))?;
        let checkpoint = restore::checkpoint_dir(&create.checkpoint);
        tracing::info!(id = %create.id, bundle = %create.bundle, restore = checkpoint.is_some(), "create");
        let mode = match checkpoint {
            Some(_) => InitMode::Restore,
            None => InitMode::Run,
        };
        let (wrapped, guard) = self.wrap(&create, mode).await?;
        let mut container = Container::from_create(&create);
        container.exec_guard = guard;
        container.checkpoint = checkpoint.clone();
        let mut changed = self.rewrite_create_options(&mut create);
        if checkpoint.is_some() {
            if !wrapped {
                return Err(Error::PodSandbox(create.id.clone()));
            }
            // The inner shim creates an ordinary task; kata-cr restores at Start.
            create.checkpoint.clear();
            create.parent_checkpoint.clear();
            changed = true;
        }
        if changed {
            req.payload = create.write_to_bytes()?;
        }
        let state = match (&checkpoint, wrapped) {
            (Some(dir), _) => State::RestorePending {
                image_dir: restore::prepare(&self.agent, &container, dir).await?,
            },
            (None, true) => State::Created,
            (None, false) => State::Sandbox,
        };
        let resp = self.inner.forward(req).await;
        if is_ok(&resp) {
            self.containers.created(container, state);
        } else if let State::RestorePending { image_dir } = state {
            self.discard_staged(&container, image_dir).await;
        }
        Ok(resp)
    }

    /// Makes kata-cr-init PID 1 of the bundle; false for a pod sandbox.
    /// In restore mode, also what the container's execs must not exceed.
    async fn wrap(
        &self,
        create: &CreateTaskRequest,
        mode: InitMode,
    ) -> Result<(bool, Option<exec_guard::ExecGuard>)> {
        let config = self.config.clone();
        let bundle = PathBuf::from(&create.bundle);
        let (outcome, guard) = crate::blocking::run("rewrite the bundle", move || {
            let init = config.init_binary_path()?;
            let outcome = spec_rewrite::wrap_bundle(&bundle, &init, mode)?;
            let guard = match (mode, &outcome) {
                (InitMode::Restore, spec_rewrite::Outcome::Sandbox) | (InitMode::Run, _) => None,
                (InitMode::Restore, _) => {
                    let spec = crate::bundle::read_spec(&bundle)?;
                    Some(exec_guard::of_spec(&spec).ok_or_else(|| {
                        Error::InvalidArgument(
                            "config.json: the init is not in restore mode with --keep-caps".into(),
                        )
                    })?)
                }
            };
            Ok((outcome, guard))
        })
        .await
        .map_err(|e| e.context(format!("container {}", create.id)))?;
        Ok((outcome != spec_rewrite::Outcome::Sandbox, guard))
    }

    /// Returns whether the request changed. Options kata-cr cannot read
    /// are the inner shim's to judge: they pass unchanged. An options Any
    /// with an empty type URL (containerd's restore sends one) is dropped:
    /// it carries nothing, and Kata's Create refuses it ("type with url :
    /// not found").
    fn rewrite_create_options(&self, create: &mut CreateTaskRequest) -> bool {
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
        match runtime_options::for_inner(any, &opts, &self.config) {
            Ok(ForInner::Unchanged) | Err(_) => false,
            Ok(ForInner::Replaced(a)) => {
                create.options = protobuf::MessageField::some(a);
                true
            }
            Ok(ForInner::Removed) => {
                create.options = protobuf::MessageField::none();
                true
            }
        }
    }

    async fn start(&self, req: Request) -> Result<Response> {
        let Ok(sr) = StartRequest::parse_from_bytes(&req.payload) else {
            return Ok(self.inner.forward(req).await);
        };
        let known = match sr.exec_id.is_empty() {
            true => self.containers.get(&sr.id),
            false => None,
        };
        let Some((_, state)) = known else {
            return Ok(self.inner.forward(req).await);
        };
        match state.start_plan() {
            Err(to) => Err(invalid(&sr.id, &state, &to)),
            Ok(StartPlan::Forward) => Ok(self.inner.forward(req).await),
            Ok(StartPlan::ThenRunning) => {
                let resp = self.inner.forward(req).await;
                if is_ok(&resp) {
                    if let Err(e) = self.containers.transition(&sr.id, State::Running) {
                        tracing::warn!(id = %sr.id, error = %e, "started");
                    }
                }
                Ok(resp)
            }
            Ok(StartPlan::Restore { .. }) => self.start_restoring(req, &sr.id).await,
        }
    }

    /// Start of a container created from a checkpoint: the inner shim
    /// starts kata-cr-init (restore mode), then the agent restores the
    /// workload as its child. Start answers once the workload runs. If the
    /// inner Start or the restore fails, the task is killed (nothing stays
    /// half-alive, and no init waits for a restore nobody performs) and the
    /// container is RestoreFailed: a retried Start is refused.
    async fn start_restoring(&self, req: Request, id: &str) -> Result<Response> {
        let (hold, c, from) = self
            .containers
            .hold(id, State::Restoring, State::RestoreFailed)?;
        let State::RestorePending { image_dir } = from else {
            return Err(invalid(id, &from, &State::Restoring));
        };
        let resp = self.inner.forward(req).await;
        if !is_ok(&resp) {
            self.discard_staged(&c, image_dir).await;
            self.kill_all(id).await;
            hold.finish(State::RestoreFailed);
            return Ok(resp);
        }
        match restore::restore(&self.agent, &c, &image_dir).await {
            Ok(_) => {
                hold.finish(State::Running);
                Ok(resp)
            }
            Err(e) => {
                tracing::error!(id, error = %e, "restore failed; killing the task");
                self.kill_all(id).await;
                hold.finish(State::RestoreFailed);
                Err(e)
            }
        }
    }

    /// While the init waits for its workload, a process exec'd into the
    /// container could pose as the restored workload: no exec until then.
    fn refuse_exec_while_restoring(&self, req: &Request) -> Option<Response> {
        let id = ExecProcessRequest::parse_from_bytes(&req.payload).ok()?.id;
        let (_, state) = self.containers.get(&id)?;
        if state.allows_exec() {
            return None;
        }
        Some(status_response(Error::ExecWhileRestoring(id).to_status()))
    }

    /// An exec into a container created from a checkpoint: kata-cr-init
    /// sets its capabilities before the command runs (see
    /// `cr::exec_guard`). Other execs pass unchanged.
    fn guard_exec(&self, mut req: Request) -> Result<Request> {
        let Ok(mut exec) = ExecProcessRequest::parse_from_bytes(&req.payload) else {
            return Ok(req);
        };
        let Some(guard) = self
            .containers
            .get(&exec.id)
            .and_then(|(c, _)| c.exec_guard)
        else {
            return Ok(req);
        };
        let Some(spec) = exec.spec.as_mut() else {
            return Err(Error::InvalidArgument(format!(
                "exec {} into container {}: no process spec",
                exec.exec_id, exec.id
            )));
        };
        spec.value = exec_guard::guard_exec(&spec.value, guard)
            .map_err(|e| e.context(format!("exec {} into container {}", exec.exec_id, exec.id)))?;
        req.payload = exec.write_to_bytes()?;
        Ok(req)
    }

    /// The engine resumes the task it paused for a checkpoint even when the
    /// checkpoint ended it (`--exit`): see [`State::allows_resume`].
    fn refuse_resume_after_exit(&self, req: &Request) -> Option<Response> {
        let id = ResumeRequest::parse_from_bytes(&req.payload).ok()?.id;
        let (_, state) = self.containers.get(&id)?;
        if state.allows_resume() {
            return None;
        }
        tracing::info!(
            id,
            "resume after a checkpoint with --exit: nothing to resume"
        );
        Some(status_response(
            invalid(&id, &state, &State::Running).to_status(),
        ))
    }

    async fn kill_all(&self, id: &str) {
        let mut k = KillRequest::new();
        k.id = id.to_string();
        k.signal = 9;
        k.all = true;
        let mut req = Request::new();
        req.service = TASK_V3.to_string();
        req.method = "Kill".into();
        req.timeout_nano = KILL_TIMEOUT_NANOS;
        req.payload = match k.write_to_bytes() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(id, error = %e, "encode the kill after a failed restore");
                return;
            }
        };
        let resp = self.inner.forward(req).await;
        if !is_ok(&resp) {
            tracing::warn!(id, status = ?resp.status, "kill after a failed restore");
        }
    }

    /// Checkpoint, then make sure that the task is not left frozen
    /// (`unpause`): the watch runs on its own, the answer does not wait.
    async fn checkpoint(self: Arc<Self>, req: Request, caller: Caller) -> Result<Response> {
        let ck = CheckpointTaskRequest::parse_from_bytes(&req.payload)
            .map_err(|e| Error::InvalidArgument(format!("decode CheckpointTaskRequest: {e}")))?;
        let id = ck.id.as_str();
        tracing::info!(id, path = %ck.path, "checkpoint");
        let pauses = match self.containers.get(id) {
            None => return Err(Error::UnknownContainer(id.to_string())),
            Some((_, State::Sandbox)) => return Err(Error::PodSandbox(id.to_string())),
            Some(_) => self.containers.pauses(id).unwrap_or_default(),
        };
        let plan = unpause::plan(&pauses, Instant::now(), &self.timing);
        let (hold, c, _) = self
            .containers
            .hold(id, State::Checkpointing, State::Running)?;
        let done = checkpoint::checkpoint(&self.agent, &c, &self.config.criu, &ck).await;
        let ended = done.as_ref().is_ok_and(|w| w.exit);
        hold.finish(match ended {
            true => State::EndedByCheckpoint,
            false => State::Running,
        });
        // A task the checkpoint ended (--exit) has nothing left to resume.
        let how = match ended {
            true => unpause::After::Nothing,
            false => unpause::after(&plan, done.is_err(), caller.gone()),
        };
        if how != unpause::After::Nothing {
            tracing::info!(
                id,
                failed = done.is_err(),
                caller_gone = caller.gone(),
                paused_for_it = plan.paused_for_it,
                "checkpoint: watching that the task is not left paused"
            );
            let (router, id, ended) = (self.clone(), id.to_string(), Instant::now());
            tokio::spawn(async move {
                let r = &router;
                unpause::watch(&r.inner, &r.containers, &id, plan, ended, how, r.timing).await;
            });
        }
        done?;
        let mut r = Response::new();
        r.payload = Empty::new().write_to_bytes()?;
        Ok(r)
    }

    /// Forwards a client's Pause and records it.
    async fn pause(&self, req: Request) -> Result<Response> {
        let id = PauseRequest::parse_from_bytes(&req.payload).map(|p| p.id);
        let resp = self.inner.forward(req).await;
        if let Ok(id) = id {
            self.containers.client_paused(&id, is_ok(&resp));
        }
        Ok(resp)
    }

    /// Forwards a client's Resume and records it. A Resume that arrives
    /// while the task is being checkpointed (a client whose deadline cut
    /// its checkpoint short) waits for the checkpoint's end: a thaw
    /// mid-dump would let the workload run on under criu.
    async fn resume(&self, req: Request) -> Result<Response> {
        let Ok(id) = ResumeRequest::parse_from_bytes(&req.payload).map(|r| r.id) else {
            return Ok(self.inner.forward(req).await);
        };
        self.containers.resumed(&id, true, false);
        while matches!(self.containers.get(&id), Some((_, State::Checkpointing))) {
            tokio::time::sleep(self.timing.every.min(std::time::Duration::from_millis(50))).await;
        }
        let resp = self.inner.forward(req).await;
        self.containers.resumed(&id, true, is_ok(&resp));
        Ok(resp)
    }

    async fn delete(&self, req: Request) -> Result<Response> {
        let id = DeleteRequest::parse_from_bytes(&req.payload)
            .ok()
            .filter(|d| d.exec_id.is_empty())
            .map(|d| d.id);
        let resp = self.inner.forward(req).await;
        let Some(id) = id.filter(|_| is_ok(&resp)) else {
            return Ok(resp);
        };
        if let Ok((c, State::RestorePending { image_dir })) =
            self.containers.transition(&id, State::Deleted)
        {
            self.discard_staged(&c, image_dir).await;
        }
        Ok(resp)
    }

    async fn discard_staged(&self, c: &Container, image_dir: String) {
        if let Some(upper) = self.agent.host_upper(c) {
            staging::discard(upper, image_dir).await;
        }
    }
}

fn is_ok(resp: &Response) -> bool {
    resp.status
        .as_ref()
        .is_none_or(|s| s.code() == ttrpc::Code::OK)
}

#[cfg(test)]
#[path = "intercept_tests.rs"]
mod tests;
