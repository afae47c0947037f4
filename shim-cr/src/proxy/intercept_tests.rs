//! The interceptions against a fake inner shim and a fake kata-cr-agent,
//! both real ttrpc servers on unix sockets in a temporary directory.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim_protos::api::{
    CheckpointTaskRequest, CreateTaskRequest, CreateTaskResponse, DeleteRequest, DeleteResponse,
    ExecProcessRequest, KillRequest, PauseRequest, ResumeRequest, StartRequest, StartResponse,
    StateRequest, StateResponse, Status,
};
use containerd_shim_protos::shim_async::{create_task, Task};
use kata_cr_api as api;
use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use ttrpc::r#async::{Client, Server, TtrpcContext};
use ttrpc::Code;

use super::*;
use crate::config::AgentMode;

fn status(code: Code, msg: &str) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// What the fake inner shim saw and how it answers.
#[derive(Default)]
struct InnerLog {
    creates: Vec<CreateTaskRequest>,
    starts: Vec<String>,
    kills: Vec<KillRequest>,
    execs: usize,
    /// The process spec (JSON) of each exec, as the inner shim got it.
    exec_specs: Vec<serde_json::Value>,
    /// Create answers this error.
    create_error: Option<(Code, String)>,
    /// Start of these ids answers an error.
    failing_starts: HashSet<String>,
    /// Whether the task is frozen (Pause, Resume and State as runc's shim).
    paused: bool,
    /// Resumes that thawed the task.
    resumes: usize,
}

#[derive(Clone, Default)]
struct FakeInner(Arc<Mutex<InnerLog>>);

impl FakeInner {
    fn log(&self) -> std::sync::MutexGuard<'_, InnerLog> {
        self.0.lock().unwrap()
    }
}

#[async_trait]
impl Task for FakeInner {
    async fn create(
        &self,
        _: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        let mut log = self.log();
        log.creates.push(req);
        if let Some((code, msg)) = &log.create_error {
            return Err(status(*code, msg));
        }
        Ok(CreateTaskResponse {
            pid: 4242,
            ..Default::default()
        })
    }
    async fn start(&self, _: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let mut log = self.log();
        log.starts.push(req.id.clone());
        if log.failing_starts.contains(&req.id) {
            return Err(status(Code::UNKNOWN, "runc start: exec fifo gone"));
        }
        Ok(StartResponse::new())
    }
    async fn kill(&self, _: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        self.log().kills.push(req);
        Ok(Empty::new())
    }
    async fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let mut log = self.log();
        log.execs += 1;
        if let Some(spec) = req.spec.as_ref() {
            log.exec_specs
                .push(serde_json::from_slice(&spec.value).unwrap_or_default());
        }
        Ok(Empty::new())
    }
    async fn delete(&self, _: &TtrpcContext, _: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        Ok(DeleteResponse::new())
    }
    async fn pause(&self, _: &TtrpcContext, _: PauseRequest) -> ttrpc::Result<Empty> {
        self.log().paused = true;
        Ok(Empty::new())
    }
    async fn resume(&self, _: &TtrpcContext, _: ResumeRequest) -> ttrpc::Result<Empty> {
        let mut log = self.log();
        if !log.paused {
            return Err(status(Code::UNKNOWN, "container not paused"));
        }
        log.paused = false;
        log.resumes += 1;
        Ok(Empty::new())
    }
    async fn state(&self, _: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let mut r = StateResponse::new();
        r.id = req.id;
        r.status = match self.log().paused {
            true => Status::PAUSED,
            false => Status::RUNNING,
        }
        .into();
        Ok(r)
    }
}

/// What the fake agent saw and how it answers. With `gate` set, Checkpoint
/// and Restore tell `entered` and wait for `gate` before doing anything.
#[derive(Default)]
struct AgentLog {
    restores: Vec<api::RestoreRequest>,
    checkpoints: Vec<api::CheckpointRequest>,
    restore_error: Option<ttrpc::Error>,
    checkpoint_error: Option<ttrpc::Error>,
}

#[derive(Clone, Default)]
struct FakeAgent {
    log: Arc<Mutex<AgentLog>>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    entered: Arc<tokio::sync::Notify>,
}

impl FakeAgent {
    async fn pass_gate(&self) {
        self.entered.notify_one();
        if let Some(gate) = &self.gate {
            let _ = gate.acquire().await.map(|p| p.forget());
        }
    }
}

#[async_trait]
impl api::Agent for FakeAgent {
    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        req: api::CheckpointRequest,
    ) -> ttrpc::Result<api::CheckpointResponse> {
        self.pass_gate().await;
        if let Some(e) = self.log.lock().unwrap().checkpoint_error.take() {
            return Err(e);
        }
        // As the agent does: a private directory at the rootfs's root.
        let name = format!(
            ".kata-cr-{:032x}",
            self.log.lock().unwrap().checkpoints.len() + 1
        );
        let dir = Path::new(&req.rootfs).join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["inventory.img", "pages-1.img"] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        self.log.lock().unwrap().checkpoints.push(req);
        let mut r = api::CheckpointResponse::new();
        r.image_dir = name;
        r.image_dir_path = dir.display().to_string();
        r.criu_log_path = "/w/dump.log".into();
        Ok(r)
    }
    async fn release_images(
        &self,
        _: &TtrpcContext,
        req: api::ReleaseImagesRequest,
    ) -> ttrpc::Result<api::ReleaseImagesResponse> {
        let dir = Path::new(&req.rootfs).join(&req.image_dir);
        let removed = std::fs::remove_dir_all(&dir).is_ok();
        Ok(api::ReleaseImagesResponse {
            removed,
            ..Default::default()
        })
    }
    async fn restore(
        &self,
        _: &TtrpcContext,
        req: api::RestoreRequest,
    ) -> ttrpc::Result<api::RestoreResponse> {
        self.pass_gate().await;
        let staged = Path::new(&req.rootfs)
            .join(&req.image_dir)
            .join("inventory.img");
        assert!(staged.is_file(), "the image set is staged at {staged:?}");
        let mut log = self.log.lock().unwrap();
        log.restores.push(req);
        if let Some(e) = log.restore_error.take() {
            return Err(e);
        }
        Ok(api::RestoreResponse {
            pid: 2,
            host_pid: 777,
            ..Default::default()
        })
    }
}

struct Bed {
    dir: tempfile::TempDir,
    router: Arc<Router>,
    inner: FakeInner,
    agent: FakeAgent,
    _servers: (Server, Server),
}

const CONFIG_SOURCE: &str = "/etc/kata-cr/config.toml";
const INNER_CONFIG: &str = "/opt/kata/configuration.toml";

impl Bed {
    async fn new() -> Bed {
        Self::with_agent(FakeAgent::default()).await
    }

    /// A bed whose agent holds each Checkpoint and Restore until the
    /// returned gate gets a permit.
    async fn gated() -> (Bed, Arc<tokio::sync::Semaphore>) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let agent = FakeAgent {
            gate: Some(gate.clone()),
            ..Default::default()
        };
        (Self::with_agent(agent).await, gate)
    }

    async fn with_agent(agent: FakeAgent) -> Bed {
        Self::with(agent, Timing::default()).await
    }

    async fn with(agent: FakeAgent, timing: Timing) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let inner = FakeInner::default();
        let inner_addr = format!("unix://{}/inner.sock", dir.path().display());
        let mut inner_srv = Server::new()
            .bind(&inner_addr)
            .unwrap()
            .register_service(create_task(Arc::new(inner.clone())));
        inner_srv.start().await.unwrap();
        let agent_sock = dir.path().join("agent.sock");
        let mut agent_srv = Server::new()
            .bind(&format!("unix://{}", agent_sock.display()))
            .unwrap()
            .register_service(api::create_agent(Arc::new(agent.clone())));
        agent_srv.start().await.unwrap();

        let init = dir.path().join("kata-cr-init");
        std::fs::write(&init, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = Config {
            source: CONFIG_SOURCE.into(),
            ..Default::default()
        };
        config.init.binary = init.display().to_string();
        config.inner.config_path = INNER_CONFIG.into();
        config.agent.mode = AgentMode::Host;
        config.agent.socket = agent_sock.display().to_string();
        let backend = AgentBackend::from_config(&config);
        let client = Client::connect(&inner_addr).await.unwrap();
        let router =
            Arc::new(Router::new(Inner::new(client, 3), config, backend).with_timing(timing));
        Bed {
            dir,
            router,
            inner,
            agent,
            _servers: (inner_srv, agent_srv),
        }
    }

    /// A bundle with a config.json and an empty rootfs (host mode: the
    /// agent writes where the proxy stages).
    fn bundle(&self, id: &str, sandbox: bool) -> PathBuf {
        let b = self.dir.path().join("bundles").join(id);
        std::fs::create_dir_all(b.join("rootfs")).unwrap();
        let mut spec = serde_json::json!({"process": {
            "args": ["sh", "-c", "sleep 9"],
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"],
            },
        }});
        if sandbox {
            spec["annotations"] =
                serde_json::json!({"io.kubernetes.cri.container-type": "sandbox"});
        }
        std::fs::write(b.join("config.json"), spec.to_string()).unwrap();
        b
    }

    fn checkpoint_dir(&self) -> PathBuf {
        let d = self.dir.path().join("checkpoint");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("inventory.img"), b"inv").unwrap();
        std::fs::write(d.join("pages-1.img"), b"pages").unwrap();
        d
    }

    fn state(&self, id: &str) -> Option<State> {
        self.router.containers.get(id).map(|(_, s)| s)
    }

    async fn call(&self, method: &str, payload: Vec<u8>) -> Response {
        self.router.route(request(method, payload)).await
    }

    async fn create(&self, id: &str, checkpoint: Option<&Path>) -> Response {
        let mut c = CreateTaskRequest::new();
        c.id = id.into();
        c.bundle = self.bundle(id, false).display().to_string();
        if let Some(d) = checkpoint {
            c.checkpoint = d.display().to_string();
        }
        self.call("Create", c.write_to_bytes().unwrap()).await
    }

    async fn start(&self, id: &str) -> Response {
        self.call("Start", start_payload(id)).await
    }

    /// A request whose caller can go away: abort the handle.
    fn spawn_call(&self, method: &str, payload: Vec<u8>) -> tokio::task::JoinHandle<Response> {
        let router = self.router.clone();
        let req = request(method, payload);
        tokio::spawn(async move { router.route(req).await })
    }

    /// An exec of `ps` asking for CAP_CHOWN and CAP_SYS_ADMIN, as a client
    /// may (ctr and CRI copy the container's stored spec).
    async fn exec(&self, id: &str) -> Response {
        let mut spec = Any::new();
        spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        spec.value = serde_json::json!({
            "args": ["ps"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
            },
        })
        .to_string()
        .into_bytes();
        let e = ExecProcessRequest {
            id: id.into(),
            exec_id: "e1".into(),
            spec: protobuf::MessageField::some(spec),
            ..Default::default()
        };
        self.call("Exec", e.write_to_bytes().unwrap()).await
    }

    fn checkpoint_request(&self, id: &str) -> (Vec<u8>, PathBuf) {
        let dest = self.dir.path().join("images").join(id);
        let ck = CheckpointTaskRequest {
            id: id.into(),
            path: dest.display().to_string(),
            ..Default::default()
        };
        (ck.write_to_bytes().unwrap(), dest)
    }

    async fn delete(&self, id: &str) -> Response {
        let d = DeleteRequest {
            id: id.into(),
            ..Default::default()
        };
        self.call("Delete", d.write_to_bytes().unwrap()).await
    }

    /// kata-cr's image directories in the container's rootfs (private ones
    /// at its root, legacy ones under .kata-cr/).
    fn staged_sets(&self, id: &str) -> Vec<String> {
        let rootfs = self.dir.path().join("bundles").join(id).join("rootfs");
        let names = |dir: std::path::PathBuf| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut sets: Vec<String> = names(rootfs.clone())
            .into_iter()
            .filter(|n| api::is_private_image_dir(n))
            .collect();
        sets.extend(names(rootfs.join(api::IMAGE_ROOT)));
        sets
    }
}

fn start_payload(id: &str) -> Vec<u8> {
    let s = StartRequest {
        id: id.into(),
        ..Default::default()
    };
    s.write_to_bytes().unwrap()
}

fn request(method: &str, payload: Vec<u8>) -> Request {
    let mut r = Request::new();
    r.service = crate::proxy::forward::TASK_V3.into();
    r.method = method.into();
    r.payload = payload;
    r.timeout_nano = 5_000_000_000;
    r
}

fn code(resp: &Response) -> Code {
    resp.status.as_ref().map_or(Code::OK, |s| s.code())
}

fn message(resp: &Response) -> &str {
    resp.status.as_ref().map_or("", |s| s.message())
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

#[tokio::test]
async fn create_makes_the_init_pid_1_and_names_the_inner_config() {
    let bed = Bed::new().await;
    let mut c = CreateTaskRequest::new();
    c.id = "c1".into();
    c.bundle = bed.bundle("c1", false).display().to_string();
    let mut opts = RuntimeOptions::new();
    opts.config_path = CONFIG_SOURCE.into();
    c.options = protobuf::MessageField::some(Any {
        type_url: crate::runtime_options::TYPE_URL.into(),
        value: opts.write_to_bytes().unwrap(),
        ..Default::default()
    });
    let resp = bed.call("Create", c.write_to_bytes().unwrap()).await;
    assert_eq!(code(&resp), Code::OK, "{}", message(&resp));

    let spec = crate::bundle::read_spec(Path::new(&c.bundle)).unwrap();
    assert_eq!(
        spec["process"]["args"],
        serde_json::json!([api::INIT_PATH, "--", "sh", "-c", "sleep 9"])
    );
    let seen = bed.inner.log().creates.remove(0);
    let sent = RuntimeOptions::from_any(seen.options.as_ref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        sent.config_path, INNER_CONFIG,
        "kata-cr's config is not the inner shim's"
    );
    assert_eq!(bed.state("c1"), Some(State::Created));
    assert_eq!(code(&bed.start("c1").await), Code::OK);
    assert_eq!(bed.state("c1"), Some(State::Running));
}

/// containerd's restore (ctr c restore, CRI create from a checkpoint) sends
/// Create an options Any with an empty type URL, which Kata's Create refuses
/// ("type with url : not found"): it never reaches the inner shim.
#[tokio::test]
async fn an_empty_options_any_never_reaches_the_inner_shim() {
    let bed = Bed::new().await;
    for (id, value) in [("c1", &b""[..]), ("c2", &b"\x0a\x01x"[..])] {
        let mut c = CreateTaskRequest::new();
        c.id = id.into();
        c.bundle = bed.bundle(id, false).display().to_string();
        c.options = protobuf::MessageField::some(Any {
            value: value.to_vec(),
            ..Default::default()
        });
        let resp = bed.call("Create", c.write_to_bytes().unwrap()).await;
        assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
        let seen = bed.inner.log().creates.remove(0);
        assert!(seen.options.is_none(), "{id}: {:?}", seen.options);
    }
    // options of another runtime pass as they came
    let mut c = CreateTaskRequest::new();
    c.id = "c3".into();
    c.bundle = bed.bundle("c3", false).display().to_string();
    c.options = protobuf::MessageField::some(Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: b"\x10\x01".to_vec(),
        ..Default::default()
    });
    let resp = bed.call("Create", c.write_to_bytes().unwrap()).await;
    assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
    let seen = bed.inner.log().creates.remove(0);
    assert_eq!(seen.options.type_url, "containerd.runc.v1.Options");
    assert_eq!(seen.options.value, b"\x10\x01");
}

#[tokio::test]
async fn a_pod_sandbox_is_left_alone() {
    let bed = Bed::new().await;
    let mut c = CreateTaskRequest::new();
    c.id = "pause".into();
    c.bundle = bed.bundle("pause", true).display().to_string();
    let before = std::fs::read(Path::new(&c.bundle).join("config.json")).unwrap();
    let resp = bed.call("Create", c.write_to_bytes().unwrap()).await;
    assert_eq!(code(&resp), Code::OK);
    let after = std::fs::read(Path::new(&c.bundle).join("config.json")).unwrap();
    assert_eq!(before, after, "the sandbox's spec is untouched");
    assert_eq!(bed.state("pause"), Some(State::Sandbox));
    let (ck, _) = bed.checkpoint_request("pause");
    let resp = bed.call("Checkpoint", ck).await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION);
    assert!(message(&resp).contains("pod sandbox"), "{}", message(&resp));
    let (ck, _) = bed.checkpoint_request("ghost");
    let resp = bed.call("Checkpoint", ck).await;
    assert_eq!(code(&resp), Code::NOT_FOUND);
    assert!(
        message(&resp).contains("not created through"),
        "{}",
        message(&resp)
    );
}

#[tokio::test]
async fn restore_is_a_deferred_create() {
    let bed = Bed::new().await;
    let ck = bed.checkpoint_dir();
    let resp = bed.create("r1", Some(&ck)).await;
    assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
    let seen = bed.inner.log().creates.remove(0);
    assert!(
        seen.checkpoint.is_empty(),
        "the inner shim creates an ordinary task"
    );
    let spec = crate::bundle::read_spec(&bed.dir.path().join("bundles/r1")).unwrap();
    assert_eq!(spec["process"]["args"][1], "--restore");
    let staged = bed.staged_sets("r1");
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert!(matches!(
        bed.state("r1"),
        Some(State::RestorePending { .. })
    ));
    assert!(
        bed.agent.log.lock().unwrap().restores.is_empty(),
        "nothing restored at Create"
    );

    let resp = bed.start("r1").await;
    assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
    let restores = std::mem::take(&mut bed.agent.log.lock().unwrap().restores);
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0].image_dir, staged[0]);
    assert_eq!(bed.state("r1"), Some(State::Running));
    assert!(bed.staged_sets("r1").is_empty(), "images leave the rootfs");
    assert!(bed.inner.log().kills.is_empty());
}

#[tokio::test]
async fn exec_waits_for_the_restore() {
    let (bed, gate) = Bed::gated().await;
    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    let start = bed.spawn_call("Start", start_payload("r1"));
    bed.agent.entered.notified().await;
    assert_eq!(bed.state("r1"), Some(State::Restoring));
    let resp = bed.exec("r1").await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION);
    assert!(
        message(&resp).contains("being restored"),
        "{}",
        message(&resp)
    );
    assert_eq!(
        bed.inner.log().execs,
        0,
        "the exec never reached the inner shim"
    );
    let resp = bed.start("r1").await;
    assert_eq!(
        code(&resp),
        Code::ABORTED,
        "a second Start: {}",
        message(&resp)
    );

    gate.add_permits(1);
    assert_eq!(code(&start.await.unwrap()), Code::OK);
    assert_eq!(code(&bed.exec("r1").await), Code::OK);
    assert_eq!(bed.inner.log().execs, 1);
}

#[tokio::test]
async fn an_exec_of_a_restored_container_gets_no_lent_capability() {
    let bed = Bed::new().await;
    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    assert_eq!(code(&bed.start("r1").await), Code::OK);
    assert_eq!(code(&bed.create("c1", None).await), Code::OK);
    assert_eq!(code(&bed.start("c1").await), Code::OK);
    assert_eq!(code(&bed.exec("r1").await), Code::OK);
    assert_eq!(code(&bed.exec("c1").await), Code::OK);
    let specs = bed.inner.log().exec_specs.clone();
    // CAP_CHOWN (0) is the container's, CAP_SYS_ADMIN (21) only lent to
    // the restoring init: kata-cr-init sets the first alone, then runs ps.
    assert_eq!(
        specs[0]["args"],
        serde_json::json!([api::INIT_PATH, "--exec", "--caps", "1:1:1:0:0", "--", "ps"])
    );
    assert_eq!(specs[0]["cwd"], "/");
    // A container that was not restored lends nothing: its exec passes as sent.
    assert_eq!(specs[1]["args"], serde_json::json!(["ps"]));
}

#[tokio::test]
async fn a_failed_restore_kills_the_task_and_start_is_not_retried() {
    let bed = Bed::new().await;
    let criu = format!(
        "criu restore failed (exit status: 1): Error (criu/files.c:1): no such file\n{}",
        api::full_log_line(Path::new("/w/restore.log"))
    );
    bed.agent.log.lock().unwrap().restore_error = Some(status(Code::FAILED_PRECONDITION, &criu));
    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    let resp = bed.start("r1").await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION);
    assert!(
        message(&resp)
            .starts_with("failed precondition: restore of container r1: criu restore failed"),
        "{}",
        message(&resp)
    );
    let kills = std::mem::take(&mut bed.inner.log().kills);
    assert_eq!(kills.len(), 1);
    assert_eq!(
        (kills[0].id.as_str(), kills[0].signal, kills[0].all),
        ("r1", 9, true)
    );
    assert_eq!(bed.state("r1"), Some(State::RestoreFailed));
    assert!(bed.staged_sets("r1").is_empty());

    let resp = bed.start("r1").await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION, "{}", message(&resp));
    assert!(
        message(&resp).contains("restore-failed"),
        "{}",
        message(&resp)
    );
    assert_eq!(
        bed.inner.log().starts.len(),
        1,
        "the retried Start never reached the inner shim"
    );
}

/// The inner Start fails after the pending restore was taken: a retried
/// Start must not start a restore-mode init that would wait forever.
#[tokio::test]
async fn a_failed_inner_start_leaves_no_waiting_init() {
    let bed = Bed::new().await;
    bed.inner.log().failing_starts.insert("r1".into());
    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    let resp = bed.start("r1").await;
    assert_eq!(code(&resp), Code::UNKNOWN, "the inner error, unchanged");
    assert_eq!(message(&resp), "runc start: exec fifo gone");
    assert_eq!(bed.inner.log().kills.len(), 1, "whatever started is killed");
    assert!(bed.staged_sets("r1").is_empty());
    assert_eq!(bed.state("r1"), Some(State::RestoreFailed));

    bed.inner.log().failing_starts.clear();
    let resp = bed.start("r1").await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION, "{}", message(&resp));
    assert_eq!(bed.inner.log().starts.len(), 1, "no second init started");
    assert!(bed.agent.log.lock().unwrap().restores.is_empty());
    assert_eq!(code(&bed.delete("r1").await), Code::OK);
    assert_eq!(bed.state("r1"), None);
}

#[tokio::test]
async fn delete_forgets_the_container_and_its_staged_images() {
    let bed = Bed::new().await;
    assert_eq!(code(&bed.create("c1", None).await), Code::OK);
    assert_eq!(code(&bed.delete("c1").await), Code::OK);
    assert_eq!(bed.state("c1"), None);
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::NOT_FOUND);

    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    assert_eq!(bed.staged_sets("r1").len(), 1);
    assert_eq!(code(&bed.delete("r1").await), Code::OK);
    assert_eq!(bed.state("r1"), None);
    assert!(
        bed.staged_sets("r1").is_empty(),
        "a never-restored set goes with its container"
    );
}

#[tokio::test]
async fn inner_errors_pass_through_unchanged() {
    let bed = Bed::new().await;
    bed.inner.log().create_error = Some((Code::ALREADY_EXISTS, "id c1: already exists".into()));
    let resp = bed.create("c1", None).await;
    assert_eq!(code(&resp), Code::ALREADY_EXISTS);
    assert_eq!(message(&resp), "id c1: already exists");
    assert_eq!(bed.state("c1"), None, "not registered");
    let ck = bed.checkpoint_dir();
    let resp = bed.create("r1", Some(&ck)).await;
    assert_eq!(message(&resp), "id c1: already exists");
    assert!(
        bed.staged_sets("r1").is_empty(),
        "the staged set is removed again"
    );
}

#[tokio::test]
async fn a_checkpoint_completes_when_its_caller_goes_away() {
    let (bed, gate) = Bed::gated().await;
    assert_eq!(code(&bed.create("c1", None).await), Code::OK);
    assert_eq!(code(&bed.start("c1").await), Code::OK);
    let (ck, dest) = bed.checkpoint_request("c1");
    let caller = bed.spawn_call("Checkpoint", ck);
    bed.agent.entered.notified().await;
    assert_eq!(bed.state("c1"), Some(State::Checkpointing));
    let (again, _) = bed.checkpoint_request("c1");
    let resp = bed.call("Checkpoint", again).await;
    assert_eq!(code(&resp), Code::ABORTED, "{}", message(&resp));
    assert!(message(&resp).contains("state"), "{}", message(&resp));

    // The caller's connection closes: ttrpc drops the handler's future.
    caller.abort();
    let _ = caller.await;
    gate.add_permits(1);
    eventually("the checkpoint ends", || {
        bed.state("c1") == Some(State::Running)
    })
    .await;
    let mut files: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["inventory.img", "pages-1.img"],
        "the images reached the request's path"
    );
    assert!(
        bed.staged_sets("c1").is_empty(),
        "no images left in the rootfs"
    );
}

#[tokio::test]
async fn a_restore_completes_when_its_caller_goes_away() {
    let (bed, gate) = Bed::gated().await;
    let ck = bed.checkpoint_dir();
    assert_eq!(code(&bed.create("r1", Some(&ck)).await), Code::OK);
    let caller = bed.spawn_call("Start", start_payload("r1"));
    bed.agent.entered.notified().await;
    caller.abort();
    let _ = caller.await;
    gate.add_permits(1);
    eventually("the restore ends", || {
        bed.state("r1") == Some(State::Running)
    })
    .await;
    assert!(bed.staged_sets("r1").is_empty());
    assert!(bed.inner.log().kills.is_empty());
    assert_eq!(code(&bed.exec("r1").await), Code::OK);
}

// ---------------------------------------------------------------- unpause

/// Short bounds: a caller that got the answer resumes within 200 ms, a
/// failed or abandoned checkpoint is watched for 600 ms.
fn quick() -> Timing {
    Timing {
        paused_for_checkpoint_within: Duration::from_secs(2),
        resume_grace: Duration::from_millis(200),
        settle: Duration::from_millis(600),
        every: Duration::from_millis(20),
    }
}

async fn quick_bed(gated: bool) -> (Bed, Arc<tokio::sync::Semaphore>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let agent = FakeAgent {
        gate: gated.then(|| gate.clone()),
        ..Default::default()
    };
    let bed = Bed::with(agent, quick()).await;
    assert_eq!(code(&bed.create("c1", None).await), Code::OK);
    assert_eq!(code(&bed.start("c1").await), Code::OK);
    (bed, gate)
}

fn pause_payload(id: &str) -> Vec<u8> {
    PauseRequest {
        id: id.into(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

fn resume_payload(id: &str) -> Vec<u8> {
    ResumeRequest {
        id: id.into(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

impl Bed {
    fn paused(&self) -> bool {
        self.inner.log().paused
    }
    fn resumes(&self) -> usize {
        self.inner.log().resumes
    }
    fn fail_next_checkpoint(&self) {
        self.agent.log.lock().unwrap().checkpoint_error = Some(status(
            Code::UNAVAILABLE,
            "kata-cr-agent: connection lost mid-dump",
        ));
    }
}

/// crictl's 2 s deadline (or containerd restarting): ttrpc drops the
/// handler, containerd's deferred Resume is never sent. The checkpoint
/// completes and the proxy resumes the task the client paused for it.
#[tokio::test]
async fn a_checkpoint_whose_caller_is_gone_leaves_the_task_running() {
    let (bed, gate) = quick_bed(true).await;
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    let (ck, dest) = bed.checkpoint_request("c1");
    let caller = bed.spawn_call("Checkpoint", ck);
    bed.agent.entered.notified().await;
    caller.abort();
    let _ = caller.await;
    gate.add_permits(1);
    eventually("the proxy resumes the task", || !bed.paused()).await;
    assert_eq!(bed.resumes(), 1);
    assert_eq!(bed.state("c1"), Some(State::Running));
    assert!(
        dest.join("inventory.img").is_file(),
        "the checkpoint completed"
    );
    assert!(bed.staged_sets("c1").is_empty());
    assert_eq!(bed.router.containers.pauses("c1").unwrap().paused_at, None);
}

/// ctr killed after its Checkpoint was answered: no Resume within the
/// grace, the proxy resumes.
#[tokio::test]
async fn a_checkpoint_nobody_resumes_after_is_resumed_by_the_proxy() {
    let (bed, _) = quick_bed(false).await;
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::OK);
    assert!(bed.paused(), "the caller has its grace to resume");
    eventually("the proxy resumes the task", || !bed.paused()).await;
    assert_eq!(bed.resumes(), 1);
}

/// The usual flow, and a failed checkpoint whose caller resumes: the proxy
/// resumes nothing itself (the client's Resume would fail).
#[tokio::test]
async fn the_callers_resume_is_not_doubled() {
    let (bed, _) = quick_bed(false).await;
    for fail in [false, true] {
        if fail {
            bed.fail_next_checkpoint();
        }
        assert_eq!(
            code(&bed.call("Pause", pause_payload("c1")).await),
            Code::OK
        );
        let (ck, _) = bed.checkpoint_request("c1");
        let resp = bed.call("Checkpoint", ck).await;
        assert_eq!(code(&resp) == Code::OK, !fail, "{}", message(&resp));
        let resp = bed.call("Resume", resume_payload("c1")).await;
        assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
    }
    tokio::time::sleep(quick().resume_grace + quick().settle + Duration::from_millis(200)).await;
    assert_eq!(bed.resumes(), 2, "the callers' resumes only");
    assert!(!bed.paused());
}

/// kata-cr-agent lost mid-dump: the client's Resume finds the task thawed
/// by criu and fails; the agent's guard freezes it again afterwards. The
/// proxy resumes it.
#[tokio::test]
async fn a_freeze_after_the_callers_resume_is_undone() {
    let (bed, _) = quick_bed(false).await;
    bed.fail_next_checkpoint();
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    bed.inner.log().paused = false; // criu thawed the cgroup while it worked
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::UNAVAILABLE);
    let resp = bed.call("Resume", resume_payload("c1")).await;
    assert_eq!(message(&resp), "container not paused");
    tokio::time::sleep(Duration::from_millis(100)).await;
    bed.inner.log().paused = true; // the guard froze it as the engine left it
    eventually("the proxy resumes the task", || !bed.paused()).await;
    assert_eq!(bed.resumes(), 1);
}

/// A task a client paused on purpose earlier stays paused whatever the
/// checkpoint does; so does one a client pauses again after it.
#[tokio::test]
async fn a_pause_the_client_wants_is_kept() {
    let timing = Timing {
        paused_for_checkpoint_within: Duration::from_millis(50),
        ..quick()
    };
    let bed = Bed::with(FakeAgent::default(), timing).await;
    assert_eq!(code(&bed.create("c1", None).await), Code::OK);
    assert_eq!(code(&bed.start("c1").await), Code::OK);
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    bed.fail_next_checkpoint();
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::UNAVAILABLE);
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::OK);
    tokio::time::sleep(timing.resume_grace + timing.settle + Duration::from_millis(200)).await;
    assert!(bed.paused(), "paused on purpose before the checkpoint");
    assert_eq!(bed.resumes(), 0);

    // paused for a failed checkpoint, then paused again by a client
    assert_eq!(
        code(&bed.call("Resume", resume_payload("c1")).await),
        Code::OK
    );
    bed.fail_next_checkpoint();
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    let (ck, _) = bed.checkpoint_request("c1");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::UNAVAILABLE);
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    tokio::time::sleep(timing.resume_grace + timing.settle + Duration::from_millis(200)).await;
    assert!(bed.paused(), "paused again after the checkpoint");
    assert_eq!(bed.resumes(), 1, "the client's own resume only");
}

/// A Resume that arrives mid-checkpoint (its client's deadline cut the
/// checkpoint short) waits for the checkpoint's end.
#[tokio::test]
async fn a_resume_during_a_checkpoint_waits_for_it() {
    let (bed, gate) = quick_bed(true).await;
    assert_eq!(
        code(&bed.call("Pause", pause_payload("c1")).await),
        Code::OK
    );
    let (ck, _) = bed.checkpoint_request("c1");
    let checkpoint = bed.spawn_call("Checkpoint", ck);
    bed.agent.entered.notified().await;
    let resume = bed.spawn_call("Resume", resume_payload("c1"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(bed.paused() && !resume.is_finished(), "no thaw mid-dump");
    gate.add_permits(1);
    assert_eq!(code(&checkpoint.await.unwrap()), Code::OK);
    assert_eq!(code(&resume.await.unwrap()), Code::OK);
    tokio::time::sleep(quick().resume_grace + Duration::from_millis(100)).await;
    assert_eq!(bed.resumes(), 1);
    assert!(!bed.paused());
}

#[tokio::test]
async fn the_task_a_checkpoint_ended_is_not_resumed() {
    let bed = Bed::new().await;
    let resume = |id: &str| {
        let r = ResumeRequest {
            id: id.into(),
            ..Default::default()
        };
        r.write_to_bytes().unwrap()
    };
    let pause = |id: &str| {
        let r = PauseRequest {
            id: id.into(),
            ..Default::default()
        };
        r.write_to_bytes().unwrap()
    };
    for id in ["c1", "c2"] {
        assert_eq!(code(&bed.create(id, None).await), Code::OK);
        assert_eq!(code(&bed.start(id).await), Code::OK);
    }
    // c1: ctr t checkpoint --exit (runc's options, as containerd sends them)
    let dest = bed.dir.path().join("images").join("c1");
    let mut opts = containerd_shim_protos::shim::oci::CheckpointOptions::new();
    opts.exit = true;
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.CheckpointOptions".into();
    any.value = opts.write_to_bytes().unwrap();
    let ck = CheckpointTaskRequest {
        id: "c1".into(),
        path: dest.display().to_string(),
        options: protobuf::MessageField::some(any),
        ..Default::default()
    };
    let resp = bed.call("Checkpoint", ck.write_to_bytes().unwrap()).await;
    assert_eq!(code(&resp), Code::OK, "{}", message(&resp));
    assert!(!bed.agent.log.lock().unwrap().checkpoints[0].leave_running);
    assert_eq!(bed.state("c1"), Some(State::EndedByCheckpoint));
    // c2: a checkpoint that leaves it running
    let (ck, _) = bed.checkpoint_request("c2");
    assert_eq!(code(&bed.call("Checkpoint", ck).await), Code::OK);
    assert_eq!(bed.state("c2"), Some(State::Running));

    // The engine resumes both after its pause.
    let resp = bed.call("Resume", resume("c1")).await;
    assert_eq!(code(&resp), Code::FAILED_PRECONDITION);
    assert!(
        message(&resp).contains("c1") && message(&resp).contains("ended-by-checkpoint"),
        "{}",
        message(&resp)
    );
    assert_eq!(code(&bed.call("Pause", pause("c2")).await), Code::OK);
    assert_eq!(code(&bed.call("Resume", resume("c2")).await), Code::OK);
    assert_eq!(
        bed.inner.log().resumes,
        1,
        "only the running one reached the inner shim"
    );
    // Kill and Delete go on as for any stopped task.
    assert_eq!(code(&bed.delete("c1").await), Code::OK);
    assert_eq!(bed.state("c1"), None);
}
