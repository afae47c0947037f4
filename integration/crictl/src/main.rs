//! `crictl`: a CRI v1 client with real crictl's command syntax and JSON config
//! formats, for the subset used in checkpoint/restore work (crictl itself is not
//! packaged in Debian).

mod args;
mod client;
mod config;
mod output;

use args::{b, v, Flag, Parsed};
use k8s_cri::v1 as cri;
use output::Kind;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

const DEFAULT_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

const USAGE: &str = "\
NAME:
   crictl - client for CRI (kata-cr implementation of a crictl subset)

USAGE:
   crictl [global options] command [command options] [arguments...]

COMMANDS:
   runp        Run a new pod:                    runp [--runtime R] pod-config.json
   create      Create a new container:           create [--no-pull] POD container-config.json pod-config.json
   start       Start one or more created containers: start ID...
   stop        Stop one or more running containers:  stop [-t SECS] ID...
   rm          Remove one or more containers:    rm [-f] [-a] ID...
   stopp       Stop one or more running pods:    stopp ID...
   rmp         Remove one or more pods:          rmp [-f] [-a] ID...
   ps          List containers:                  ps [-a] [-q] [--pod ID] [--name RE] [--state S] [--label K=V] [-o json] [--no-trunc] [-l] [-n N]
   pods        List pods:                        pods [-q] [--name RE] [--namespace RE] [--state S] [--label K=V] [-o json] [--no-trunc]
   inspect     Display the status of containers: inspect [-q] [-o json|yaml|go-template --template T] ID...
   inspectp    Display the status of pods:       inspectp [-q] [-o json|yaml|go-template --template T] ID...
   exec        Run a command in a container:     exec [-s] [-i] [-t] [--timeout SECS] ID CMD [ARG...]
                                                 exec [--name RE|--pod ID|--state S|--label K=V|-l|-n N] [-q] [-e] CMD [ARG...]
   checkpoint  Checkpoint containers:            checkpoint --export=FILE ID...
   pull        Pull an image:                    pull [--creds USER[:PASS]] [--auth B64] IMAGE
   images      List images:                      images [-q] [-o json] [--no-trunc] [IMAGE]
   rmi         Remove images:                    rmi ID...
   logs        Print a container's log file:     logs [-f] [--tail N] [-t] ID
   stats       Container resource usage:         stats [-a] [--pod ID] [--label K=V] [-s SECS] [-o json|yaml] [ID]
   version     Display runtime version information
   info        Display information of the container runtime
   help        Show this help

GLOBAL OPTIONS:
   --runtime-endpoint value, -r value  CRI endpoint (unix:///path or tcp://host:port)
                                       [$CONTAINER_RUNTIME_ENDPOINT, runtime-endpoint in
                                       the config file, default unix:///run/containerd/containerd.sock]
   --image-endpoint value, -i value    image endpoint [$IMAGE_SERVICE_ENDPOINT, default: runtime endpoint]
   --timeout value, -t value           connection timeout and deadline of every call (e.g. 2s, 1m);
                                       default: 10s to connect and no per-call deadline
   --config value, -c value            config file [$CRI_CONFIG_FILE, default /etc/crictl.yaml]
   --debug, -D                         accepted, ignored
   --help, -h                          show help

NOTES (differences from real crictl):
   exec always uses the ExecSync RPC: stdout/stderr are printed once the command ends
   and crictl exits with the command's exit code. -i and -t are accepted but no stdin
   is forwarded and no terminal is allocated (no streaming Exec).
   create pulls the image when it is not present (unless --no-pull); when image.image
   names an existing file (a checkpoint archive from `checkpoint --export`) it is
   passed as an absolute path and never pulled, so containerd restores from it.
   Config files are JSON or YAML with crictl's snake_case keys (lowerCamelCase keys
   and enum names such as \"NODE\" are also accepted). inspect/inspectp times are UTC. Container and pod IDs may be unique prefixes or names.
";

type Res<T> = Result<T, String>;

struct Ctx {
    runtime_ep: String,
    image_ep: String,
    call_timeout: Option<Duration>,
    connect_timeout: Duration,
    rt: Option<client::Runtime>,
    img: Option<client::Images>,
}

fn grpc(what: String) -> impl FnOnce(tonic::Status) -> String {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

impl Ctx {
    async fn rt(&mut self) -> Res<client::Runtime> {
        if self.rt.is_none() {
            let ch = client::connect(&self.runtime_ep, self.connect_timeout).await?;
            self.rt = Some(client::runtime(ch));
        }
        Ok(self.rt.clone().unwrap())
    }

    async fn img(&mut self) -> Res<client::Images> {
        if self.img.is_none() {
            let ch = client::connect(&self.image_ep, self.connect_timeout).await?;
            self.img = Some(client::images(ch));
        }
        Ok(self.img.clone().unwrap())
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = self.call_timeout {
            r.set_timeout(t);
        }
        r
    }

    async fn containers(
        &mut self,
        filter: Option<cri::ContainerFilter>,
    ) -> Res<Vec<cri::Container>> {
        let mut rt = self.rt().await?;
        let r = rt
            .list_containers(self.req(cri::ListContainersRequest { filter }))
            .await
            .map_err(grpc("list containers".into()))?;
        Ok(r.into_inner().containers)
    }

    async fn pods(&mut self, filter: Option<cri::PodSandboxFilter>) -> Res<Vec<cri::PodSandbox>> {
        let mut rt = self.rt().await?;
        let r = rt
            .list_pod_sandbox(self.req(cri::ListPodSandboxRequest { filter }))
            .await
            .map_err(grpc("list pods".into()))?;
        Ok(r.into_inner().items)
    }

    /// Exact id, else unique id prefix, else unique name; unknown ids pass through
    /// unchanged so that the runtime reports them.
    async fn resolve_container(&mut self, id: &str) -> Res<String> {
        let Ok(all) = self.containers(None).await else {
            return Ok(id.to_string());
        };
        fn named(c: &cri::Container) -> Option<&str> {
            c.metadata.as_ref().map(|m| m.name.as_str())
        }
        resolve(
            id,
            "container",
            all.iter().map(|c| (c.id.as_str(), named(c).unwrap_or(""))),
        )
    }

    async fn resolve_pod(&mut self, id: &str) -> Res<String> {
        let Ok(all) = self.pods(None).await else {
            return Ok(id.to_string());
        };
        fn named(c: &cri::PodSandbox) -> Option<&str> {
            c.metadata.as_ref().map(|m| m.name.as_str())
        }
        resolve(
            id,
            "pod",
            all.iter().map(|c| (c.id.as_str(), named(c).unwrap_or(""))),
        )
    }

    async fn container_status(
        &mut self,
        id: &str,
        verbose: bool,
    ) -> Res<cri::ContainerStatusResponse> {
        let mut rt = self.rt().await?;
        rt.container_status(self.req(cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose,
        }))
        .await
        .map(|r| r.into_inner())
        .map_err(grpc(format!("inspect {id}")))
    }
}

fn resolve<'a>(
    id: &str,
    what: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
) -> Res<String> {
    let items: Vec<_> = items.collect();
    if id.is_empty() {
        return Err(format!("{what} ID cannot be empty"));
    }
    if items.iter().any(|(i, _)| *i == id) {
        return Ok(id.to_string());
    }
    let pre: Vec<_> = items.iter().filter(|(i, _)| i.starts_with(id)).collect();
    match pre.len() {
        1 => return Ok(pre[0].0.to_string()),
        n if n > 1 => {
            return Err(format!(
                "{what} ID prefix {id:?} is ambiguous ({n} matches)"
            ))
        }
        _ => {}
    }
    let named: Vec<_> = items.iter().filter(|(_, n)| *n == id).collect();
    match named.len() {
        1 => Ok(named[0].0.to_string()),
        n if n > 1 => Err(format!("{what} name {id:?} is ambiguous ({n} matches)")),
        _ => Ok(id.to_string()),
    }
}

/// `endpoint: value` lines of crictl's YAML config file.
fn config_file(path: &str) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                if !v.is_empty() {
                    m.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
    }
    m
}

const GLOBAL: &[Flag] = &[
    v(&["runtime-endpoint", "r"]),
    v(&["image-endpoint", "i"]),
    v(&["timeout", "t"]),
    v(&["config", "c"]),
    b(&["debug", "D"]),
    b(&["help", "h"]),
    b(&["version", "v"]),
];

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => match rt.block_on(run(argv)) {
            Ok(c) => c,
            Err(e) => {
                let _ = std::io::stdout().flush();
                eprintln!("crictl: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("crictl: tokio: {e}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

async fn run(argv: Vec<String>) -> Res<i32> {
    let g = args::parse(&argv, GLOBAL, false)?;
    if g.has("version") {
        println!("crictl version kata-cr-{}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(verb) = g.pos.first().cloned() else {
        print!("{USAGE}");
        return Ok(if g.has("help") { 0 } else { 1 });
    };
    let rest = &g.pos[1..];
    if g.has("help")
        || verb == "help"
        || verb == "h"
        || rest.iter().any(|a| a == "--help" || a == "-h") && verb != "exec"
    {
        print!("{USAGE}");
        return Ok(0);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    let cfg_path = g
        .get("config")
        .map(str::to_string)
        .or_else(|| env("CRI_CONFIG_FILE"))
        .unwrap_or_else(|| "/etc/crictl.yaml".into());
    let cfg = config_file(&cfg_path);
    let runtime_ep = g
        .get("runtime-endpoint")
        .map(str::to_string)
        .or_else(|| env("CONTAINER_RUNTIME_ENDPOINT"))
        .or_else(|| cfg.get("runtime-endpoint").cloned())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
    let image_ep = g
        .get("image-endpoint")
        .map(str::to_string)
        .or_else(|| env("IMAGE_SERVICE_ENDPOINT"))
        .or_else(|| cfg.get("image-endpoint").cloned())
        .unwrap_or_else(|| runtime_ep.clone());
    let timeout = match g
        .get("timeout")
        .map(str::to_string)
        .or_else(|| cfg.get("timeout").cloned())
    {
        Some(t) => Some(args::duration(&t)?).filter(|d| !d.is_zero()),
        None => None,
    };
    let mut ctx = Ctx {
        runtime_ep,
        image_ep,
        call_timeout: timeout,
        connect_timeout: timeout.unwrap_or(Duration::from_secs(10)),
        rt: None,
        img: None,
    };
    let c = &mut ctx;
    match verb.as_str() {
        "runp" => runp(c, rest).await,
        "create" => create(c, rest).await,
        "start" => start(c, rest).await,
        "stop" => stop(c, rest).await,
        "rm" => rm(c, rest).await,
        "stopp" => stopp(c, rest).await,
        "rmp" => rmp(c, rest).await,
        "ps" => ps(c, rest).await,
        "pods" => pods(c, rest).await,
        "inspect" => inspect(c, rest).await,
        "inspectp" => inspectp(c, rest).await,
        "exec" => exec(c, rest).await,
        "checkpoint" => checkpoint(c, rest).await,
        "pull" => pull(c, rest).await,
        "images" | "image" | "img" => images(c, rest).await,
        "rmi" => rmi(c, rest).await,
        "logs" => logs(c, rest).await,
        "version" => version(c, rest).await,
        "info" => info(c, rest).await,
        "stats" => stats(c, rest).await,
        other => Err(format!("unknown command {other:?}; see `crictl help`")),
    }
}

fn need(p: &Parsed, n: usize, usage: &str) -> Res<()> {
    if p.pos.len() < n {
        Err(format!("usage: crictl {usage}"))
    } else {
        Ok(())
    }
}

async fn runp(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[v(&["runtime", "r"]), v(&["cancel-timeout", "T"])],
        true,
    )?;
    need(&p, 1, "runp [--runtime R] pod-config.json")?;
    let config = config::pod_config(&p.pos[0])?;
    let mut rt = c.rt().await?;
    let r = rt
        .run_pod_sandbox(c.req(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: p.get("runtime").unwrap_or("").to_string(),
        }))
        .await
        .map_err(grpc("runp".into()))?;
    println!("{}", r.into_inner().pod_sandbox_id);
    Ok(0)
}

fn auth_config(p: &Parsed) -> Res<Option<cri::AuthConfig>> {
    if let Some(creds) = p.get("creds") {
        let (u, pw) = creds.split_once(':').unwrap_or((creds, ""));
        if u.is_empty() {
            return Err("--creds: username cannot be empty".into());
        }
        return Ok(Some(cri::AuthConfig {
            username: u.into(),
            password: pw.into(),
            ..Default::default()
        }));
    }
    if let Some(auth) = p.get("auth") {
        return Ok(Some(cri::AuthConfig {
            auth: auth.into(),
            ..Default::default()
        }));
    }
    if let Some(u) = p.get("username") {
        return Ok(Some(cri::AuthConfig {
            username: u.into(),
            ..Default::default()
        }));
    }
    Ok(None)
}

const PULL_FLAGS: [Flag; 3] = [v(&["creds"]), v(&["auth"]), v(&["username", "u"])];

async fn create(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[
            b(&["no-pull"]),
            b(&["with-pull"]),
            v(&["cancel-timeout", "T"]),
            PULL_FLAGS[0].clone_flag(),
            PULL_FLAGS[1].clone_flag(),
            PULL_FLAGS[2].clone_flag(),
        ],
        true,
    )?;
    need(
        &p,
        3,
        "create [--no-pull] POD container-config.json pod-config.json",
    )?;
    let pod = c.resolve_pod(&p.pos[0]).await?;
    let mut config = config::container_config(&p.pos[1])?;
    let sandbox = config::pod_config(&p.pos[2])?;
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    let path = std::path::Path::new(&image);
    if !image.is_empty() && path.is_file() {
        // A checkpoint archive: containerd restores from it; never pull. Absolute,
        // since the runtime resolves relative paths against its own cwd.
        if let Ok(abs) = std::path::absolute(path) {
            if let Some(spec) = config.image.as_mut() {
                spec.image = abs.to_string_lossy().into_owned();
            }
        }
    } else if !image.is_empty() && !p.has("no-pull") {
        let mut img = c.img().await?;
        let spec = config.image.clone().unwrap_or_default();
        let present = img
            .image_status(c.req(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            }))
            .await
            .map_err(grpc(format!("image status {image}")))?
            .into_inner()
            .image
            .is_some();
        if !present {
            img.pull_image(c.req(cri::PullImageRequest {
                image: Some(spec),
                auth: auth_config(&p)?,
                sandbox_config: Some(sandbox.clone()),
            }))
            .await
            .map_err(grpc(format!("pull image {image}")))?;
        }
    }
    let mut rt = c.rt().await?;
    let r = rt
        .create_container(c.req(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox),
        }))
        .await
        .map_err(grpc(format!("create container in pod {pod}")))?;
    println!("{}", r.into_inner().container_id);
    Ok(0)
}

impl Flag {
    const fn clone_flag(&self) -> Flag {
        Flag {
            names: self.names,
            value: self.value,
        }
    }
}

async fn start(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[], true)?;
    need(&p, 1, "start ID...")?;
    for id in &p.pos {
        let id = c.resolve_container(id).await?;
        let mut rt = c.rt().await?;
        rt.start_container(c.req(cri::StartContainerRequest {
            container_id: id.clone(),
        }))
        .await
        .map_err(grpc(format!("start {id}")))?;
        println!("{id}");
    }
    Ok(0)
}

async fn stop_one(c: &mut Ctx, id: &str, timeout: i64) -> Res<()> {
    let mut rt = c.rt().await?;
    rt.stop_container(c.req(cri::StopContainerRequest {
        container_id: id.to_string(),
        timeout,
    }))
    .await
    .map_err(grpc(format!("stop {id}")))?;
    Ok(())
}

async fn stop(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[v(&["timeout", "t"])], true)?;
    need(&p, 1, "stop [-t SECS] ID...")?;
    let t = match p.get("timeout") {
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| format!("invalid --timeout {s:?}"))?,
        None => 0,
    };
    for id in &p.pos {
        let id = c.resolve_container(id).await?;
        stop_one(c, &id, t).await?;
        println!("{id}");
    }
    Ok(0)
}

async fn rm(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[b(&["force", "f"]), b(&["all", "a"])], true)?;
    let mut ids = Vec::new();
    let mut running = std::collections::HashSet::new();
    let all = c.containers(None).await.unwrap_or_default();
    for ct in &all {
        if ct.state == cri::ContainerState::ContainerRunning as i32 {
            running.insert(ct.id.clone());
        }
    }
    if p.has("all") {
        ids = all.iter().map(|c| c.id.clone()).collect();
    } else {
        need(&p, 1, "rm [-f] [-a] ID...")?;
        for id in &p.pos {
            ids.push(c.resolve_container(id).await?);
        }
    }
    let mut failed = false;
    for id in ids {
        if running.contains(&id) {
            if !p.has("force") {
                eprintln!("crictl: rm {id}: container is running, stop it first or use -f");
                failed = true;
                continue;
            }
            if let Err(e) = stop_one(c, &id, 0).await {
                eprintln!("crictl: {e}");
                failed = true;
                continue;
            }
        }
        let mut rt = c.rt().await?;
        match rt
            .remove_container(c.req(cri::RemoveContainerRequest {
                container_id: id.clone(),
            }))
            .await
        {
            Ok(_) => println!("{id}"),
            Err(s) => {
                eprintln!("crictl: {}", grpc(format!("rm {id}"))(s));
                failed = true;
            }
        }
    }
    Ok(failed as i32)
}

async fn stopp(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[], true)?;
    need(&p, 1, "stopp ID...")?;
    for id in &p.pos {
        let id = c.resolve_pod(id).await?;
        let mut rt = c.rt().await?;
        rt.stop_pod_sandbox(c.req(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        }))
        .await
        .map_err(grpc(format!("stopp {id}")))?;
        println!("Stopped sandbox {id}");
    }
    Ok(0)
}

async fn rmp(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[b(&["force", "f"]), b(&["all", "a"])], true)?;
    let mut ids = Vec::new();
    if p.has("all") {
        ids = c.pods(None).await?.into_iter().map(|p| p.id).collect();
    } else {
        need(&p, 1, "rmp [-f] [-a] ID...")?;
        for id in &p.pos {
            ids.push(c.resolve_pod(id).await?);
        }
    }
    let mut failed = false;
    for id in ids {
        let mut rt = c.rt().await?;
        if p.has("force") {
            if let Err(s) = rt
                .stop_pod_sandbox(c.req(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                }))
                .await
            {
                eprintln!("crictl: {}", grpc(format!("stopp {id}"))(s));
                failed = true;
                continue;
            }
        }
        match rt
            .remove_pod_sandbox(c.req(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .await
        {
            Ok(_) => println!("Removed sandbox {id}"),
            Err(s) => {
                eprintln!("crictl: {}", grpc(format!("rmp {id}"))(s));
                failed = true;
            }
        }
    }
    Ok(failed as i32)
}

fn labels(p: &Parsed) -> Res<std::collections::HashMap<String, String>> {
    p.all("label")
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("invalid --label {l:?}, want key=value"))
        })
        .collect()
}

fn regex(p: &Parsed, name: &str) -> Res<Option<regex::Regex>> {
    p.get(name)
        .filter(|s| !s.is_empty())
        .map(|s| regex::Regex::new(s).map_err(|e| format!("--{name}: {e}")))
        .transpose()
}

fn limit(p: &Parsed) -> Res<Option<usize>> {
    if p.has("latest") {
        return Ok(Some(1));
    }
    p.get("last")
        .map(|n| n.parse().map_err(|_| format!("invalid --last {n:?}")))
        .transpose()
}

fn container_state_name(s: i32) -> &'static str {
    match cri::ContainerState::try_from(s) {
        Ok(cri::ContainerState::ContainerCreated) => "Created",
        Ok(cri::ContainerState::ContainerRunning) => "Running",
        Ok(cri::ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}

const PS_FLAGS: &[Flag] = &[
    b(&["all", "a"]),
    b(&["quiet", "q"]),
    v(&["pod", "p"]),
    v(&["name"]),
    v(&["state", "s"]),
    v(&["id"]),
    v(&["label"]),
    v(&["image"]),
    v(&["output", "o"]),
    b(&["no-trunc"]),
    b(&["latest", "l"]),
    v(&["last", "n"]),
    b(&["verbose", "v"]),
    b(&["resolve-image-name", "r"]),
];

/// The container listing behind `ps` and `exec`'s filter flags: running containers
/// unless --all or --state, newest first.
async fn list_containers(c: &mut Ctx, p: &Parsed) -> Res<Vec<cri::Container>> {
    let state = match p.get("state").map(|s| s.to_ascii_lowercase()) {
        None if p.has("all") => None,
        None => Some(cri::ContainerState::ContainerRunning),
        Some(s) => Some(match s.trim_start_matches("container_") {
            "created" => cri::ContainerState::ContainerCreated,
            "running" => cri::ContainerState::ContainerRunning,
            "exited" => cri::ContainerState::ContainerExited,
            "unknown" => cri::ContainerState::ContainerUnknown,
            _ => {
                return Err(format!(
                    "unsupported state {s:?}: created, running, exited or unknown"
                ))
            }
        }),
    };
    let pod = match p.get("pod").filter(|s| !s.is_empty()) {
        Some(id) => c.resolve_pod(id).await?,
        None => String::new(),
    };
    let filter = cri::ContainerFilter {
        id: String::new(),
        state: state.map(|s| cri::ContainerStateValue { state: s as i32 }),
        pod_sandbox_id: pod,
        label_selector: labels(p)?,
    };
    let name = regex(p, "name")?;
    let id = p.get("id").unwrap_or("");
    let image = p.get("image").unwrap_or("");
    let mut list: Vec<_> = c
        .containers(Some(filter))
        .await?
        .into_iter()
        .filter(|ct| ct.id.starts_with(id))
        .filter(|ct| {
            name.as_ref().is_none_or(|re| {
                re.is_match(ct.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or(""))
            })
        })
        .filter(|ct| {
            image.is_empty()
                || ct.image.as_ref().is_some_and(|i| i.image.contains(image))
                || ct.image_ref.contains(image)
        })
        .collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    if let Some(n) = limit(p)? {
        list.truncate(n);
    }
    Ok(list)
}

async fn ps(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, PS_FLAGS, true)?;
    let list = list_containers(c, &p).await?;
    if p.has("quiet") {
        for ct in &list {
            println!("{}", ct.id);
        }
        return Ok(0);
    }
    match p.get("output").unwrap_or("table") {
        o @ ("json" | "yaml") => {
            let v = json!({"containers": list.iter().map(|x| output::to_pb(x, Kind::Container)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" | "" => {
            let nt = p.has("no-trunc");
            let mut rows = vec![[
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID",
                "POD",
                "NAMESPACE",
            ]
            .map(String::from)
            .to_vec()];
            for ct in &list {
                let md = ct.metadata.clone().unwrap_or_default();
                let img = ct
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                let img = if img.starts_with("sha256:") {
                    output::trunc_id(&img, nt)
                } else {
                    img
                };
                rows.push(vec![
                    output::trunc_id(&ct.id, nt),
                    img,
                    output::ago(ct.created_at),
                    container_state_name(ct.state).into(),
                    md.name,
                    md.attempt.to_string(),
                    output::trunc_id(&ct.pod_sandbox_id, nt),
                    ct.labels
                        .get("io.kubernetes.pod.name")
                        .cloned()
                        .unwrap_or_else(|| "unknown".into()),
                    ct.labels
                        .get("io.kubernetes.pod.namespace")
                        .cloned()
                        .unwrap_or_else(|| "unknown".into()),
                ]);
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(format!("unsupported output format {o:?}")),
    }
    Ok(0)
}

async fn pods(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[
            v(&["name"]),
            v(&["namespace"]),
            v(&["state", "s"]),
            v(&["label"]),
            v(&["id"]),
            b(&["quiet", "q"]),
            v(&["output", "o"]),
            b(&["no-trunc"]),
            b(&["latest", "l"]),
            v(&["last", "n"]),
            b(&["verbose", "v"]),
        ],
        true,
    )?;
    let state = match p.get("state").map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(s) => Some(match s.trim_start_matches("sandbox_") {
            "ready" => cri::PodSandboxState::SandboxReady,
            "notready" => cri::PodSandboxState::SandboxNotready,
            _ => return Err(format!("unsupported state {s:?}: ready or notready")),
        }),
    };
    let filter = cri::PodSandboxFilter {
        id: String::new(),
        state: state.map(|s| cri::PodSandboxStateValue { state: s as i32 }),
        label_selector: labels(&p)?,
    };
    let name = regex(&p, "name")?;
    let ns = regex(&p, "namespace")?;
    let id = p.get("id").unwrap_or("");
    let mut list: Vec<_> = c
        .pods(Some(filter))
        .await?
        .into_iter()
        .filter(|x| x.id.starts_with(id))
        .filter(|x| {
            let md = x.metadata.clone().unwrap_or_default();
            name.as_ref().is_none_or(|re| re.is_match(&md.name))
                && ns.as_ref().is_none_or(|re| re.is_match(&md.namespace))
        })
        .collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    if let Some(n) = limit(&p)? {
        list.truncate(n);
    }
    if p.has("quiet") {
        for x in &list {
            println!("{}", x.id);
        }
        return Ok(0);
    }
    match p.get("output").unwrap_or("table") {
        o @ ("json" | "yaml") => {
            let v = json!({"items": list.iter().map(|x| output::to_pb(x, Kind::Pod)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" | "" => {
            let nt = p.has("no-trunc");
            let mut rows = vec![[
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME",
            ]
            .map(String::from)
            .to_vec()];
            for x in &list {
                let md = x.metadata.clone().unwrap_or_default();
                let state = if x.state == cri::PodSandboxState::SandboxReady as i32 {
                    "Ready"
                } else {
                    "NotReady"
                };
                rows.push(vec![
                    output::trunc_id(&x.id, nt),
                    output::ago(x.created_at),
                    state.into(),
                    md.name,
                    md.namespace,
                    md.attempt.to_string(),
                    if x.runtime_handler.is_empty() {
                        "(default)".into()
                    } else {
                        x.runtime_handler.clone()
                    },
                ]);
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(format!("unsupported output format {o:?}")),
    }
    Ok(0)
}

const INSPECT_FLAGS: &[Flag] = &[v(&["output", "o"]), v(&["template"]), b(&["quiet", "q"])];

fn print_doc(p: &Parsed, doc: &Value) -> Res<()> {
    let out = output::render(doc, p.get("output").unwrap_or("json"), p.get("template"))?;
    println!("{out}");
    Ok(())
}

/// `inspect`: crictl's resourceStatus; -q asks for the status without the verbose
/// info; several IDs print as one JSON array.
async fn inspect(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, INSPECT_FLAGS, true)?;
    need(
        &p,
        1,
        "inspect [-o json|yaml|go-template --template T] ID...",
    )?;
    let mut docs = Vec::new();
    for id in &p.pos {
        let id = c.resolve_container(id).await?;
        let r = c.container_status(&id, !p.has("quiet")).await?;
        let status = r.status.unwrap_or_default();
        docs.push(output::status_info(
            output::container_status_json(&status),
            None,
            &r.info,
        ));
    }
    print_doc(&p, &output::one_or_many(docs))?;
    Ok(0)
}

async fn inspectp(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, INSPECT_FLAGS, true)?;
    need(
        &p,
        1,
        "inspectp [-o json|yaml|go-template --template T] ID...",
    )?;
    let mut docs = Vec::new();
    for id in &p.pos {
        let id = c.resolve_pod(id).await?;
        let mut rt = c.rt().await?;
        let r = rt
            .pod_sandbox_status(c.req(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: !p.has("quiet"),
            }))
            .await
            .map_err(grpc(format!("inspectp {id}")))?
            .into_inner();
        let status = r.status.unwrap_or_default();
        docs.push(output::status_info(
            output::pod_status_json(&status),
            None,
            &r.info,
        ));
    }
    print_doc(&p, &output::one_or_many(docs))?;
    Ok(0)
}

const EXEC_FLAGS: &[Flag] = &[
    b(&["sync", "s"]),
    b(&["interactive", "i"]),
    b(&["tty", "t"]),
    v(&["timeout"]),
    v(&["transport", "r"]),
    v(&["name"]),
    v(&["pod", "p"]),
    v(&["image"]),
    v(&["state"]),
    v(&["label"]),
    b(&["latest", "l"]),
    v(&["last", "n"]),
    b(&["quiet", "q"]),
    b(&["ignore-errors", "e"]),
    b(&["parallel", "x"]),
];

/// `exec`: always ExecSync (see USAGE). With a filter flag (--name, --pod, --image,
/// --state, --label, --latest, --last) every argument is the command and it runs in
/// each matching container, as in crictl.
async fn exec(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, EXEC_FLAGS, false)?;
    let filtered = ["name", "pod", "image", "state", "label", "latest", "last"]
        .iter()
        .any(|f| !p.all(f).is_empty());
    let (ids, cmd) = if filtered {
        need(&p, 1, "exec [filter flags] CMD [ARG...]")?;
        let ids: Vec<String> = list_containers(c, &p)
            .await?
            .into_iter()
            .map(|x| x.id)
            .collect();
        if ids.is_empty() {
            return Err("exec: no containers found per filter flags".into());
        }
        (ids, p.pos.clone())
    } else {
        need(
            &p,
            2,
            "exec [-s] [-i] [-t] [--timeout SECS] ID CMD [ARG...]",
        )?;
        let id = c.resolve_container(&p.pos[0]).await?;
        (vec![id], p.pos[1..].to_vec())
    };
    let timeout = match p.get("timeout") {
        Some(s) => args::duration(s)?.as_secs() as i64,
        None => 0,
    };
    let show_ids = ids.len() > 1 || filtered && !p.has("quiet");
    let mut code = 0;
    for id in ids {
        if show_ids {
            println!("{id}:");
        }
        match exec_one(c, &id, &cmd, timeout).await {
            Ok(0) => {}
            Ok(n) => code = n,
            Err(e) if p.has("ignore-errors") => eprintln!("crictl: {e}"),
            Err(e) => return Err(e),
        }
    }
    Ok(if p.has("ignore-errors") { 0 } else { code })
}

async fn exec_one(c: &mut Ctx, id: &str, cmd: &[String], timeout: i64) -> Res<i32> {
    let mut rt = c.rt().await?;
    let mut req = tonic::Request::new(cri::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.to_vec(),
        timeout,
    });
    if timeout > 0 {
        // Leave the runtime time to report the command's own timeout.
        req.set_timeout(Duration::from_secs(timeout as u64 + 30));
    } else if let Some(t) = c.call_timeout {
        req.set_timeout(t);
    }
    let r = rt
        .exec_sync(req)
        .await
        .map_err(grpc(format!("exec {id}")))?
        .into_inner();
    let mut out = std::io::stdout();
    out.write_all(&r.stdout).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    let mut err = std::io::stderr();
    err.write_all(&r.stderr).map_err(|e| e.to_string())?;
    Ok(r.exit_code)
}

async fn checkpoint(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[v(&["export", "e"])], true)?;
    need(&p, 1, "checkpoint --export=FILE ID...")?;
    let export = p
        .get("export")
        .filter(|s| !s.is_empty())
        .ok_or("checkpoint: --export=FILE is required")?;
    // The runtime writes relative paths against its own cwd: make it ours.
    let location = std::path::absolute(export)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| export.to_string());
    for id in &p.pos {
        let id = c.resolve_container(id).await?;
        let mut rt = c.rt().await?;
        rt.checkpoint_container(c.req(cri::CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.clone(),
            timeout: c.call_timeout.map(|t| t.as_secs() as i64).unwrap_or(0),
        }))
        .await
        .map_err(grpc(format!("checkpoint {id}")))?;
        println!("{id}");
    }
    Ok(0)
}

async fn pull(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let mut spec: Vec<Flag> = PULL_FLAGS.iter().map(|f| f.clone_flag()).collect();
    spec.push(v(&["pod-config", "p"]));
    spec.push(v(&["annotation", "a"]));
    let p = args::parse(a, &spec, true)?;
    need(
        &p,
        1,
        "pull [--creds USER[:PASS]] [--auth B64] [--pod-config pod.json] IMAGE",
    )?;
    let sandbox = p.get("pod-config").map(config::pod_config).transpose()?;
    let mut img = c.img().await?;
    let image = p.pos[0].clone();
    let r = img
        .pull_image(c.req(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            auth: auth_config(&p)?,
            sandbox_config: sandbox,
        }))
        .await
        .map_err(grpc(format!("pull {image}")))?;
    println!("Image is up to date for {}", r.into_inner().image_ref);
    Ok(0)
}

fn split_tag(repo_tag: &str) -> (String, String) {
    match repo_tag.rfind(':') {
        Some(i) if !repo_tag[i..].contains('/') => {
            (repo_tag[..i].to_string(), repo_tag[i + 1..].to_string())
        }
        _ => (repo_tag.to_string(), "<none>".into()),
    }
}

async fn images(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[
            b(&["quiet", "q"]),
            v(&["output", "o"]),
            b(&["no-trunc"]),
            b(&["digests"]),
            b(&["verbose", "v"]),
            b(&["pinned"]),
        ],
        true,
    )?;
    let mut img = c.img().await?;
    let filter = p.pos.first().map(|i| cri::ImageFilter {
        image: Some(cri::ImageSpec {
            image: i.clone(),
            ..Default::default()
        }),
    });
    let list = img
        .list_images(c.req(cri::ListImagesRequest { filter }))
        .await
        .map_err(grpc("images".into()))?
        .into_inner()
        .images;
    if p.has("quiet") {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            if seen.insert(i.id.clone()) {
                println!("{}", i.id);
            }
        }
        return Ok(0);
    }
    match p.get("output").unwrap_or("table") {
        o @ ("json" | "yaml") => {
            let v = json!({"images": list.iter().map(|x| output::to_pb(x, Kind::Other)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" | "" => {
            let nt = p.has("no-trunc");
            let mut rows = vec![["IMAGE", "TAG", "IMAGE ID", "SIZE"]
                .map(String::from)
                .to_vec()];
            for i in &list {
                let tags = if i.repo_tags.is_empty() {
                    vec![("<none>".to_string(), "<none>".to_string())]
                } else {
                    i.repo_tags.iter().map(|t| split_tag(t)).collect()
                };
                for (repo, tag) in tags {
                    rows.push(vec![
                        repo,
                        tag,
                        output::trunc_id(&i.id, nt),
                        output::human_size(i.size, 3),
                    ]);
                }
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(format!("unsupported output format {o:?}")),
    }
    Ok(0)
}

async fn rmi(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, &[b(&["all", "a"]), b(&["prune", "q"])], true)?;
    need(&p, 1, "rmi ID...")?;
    let mut img = c.img().await?;
    for id in &p.pos {
        img.remove_image(c.req(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: id.clone(),
                ..Default::default()
            }),
        }))
        .await
        .map_err(grpc(format!("rmi {id}")))?;
        println!("Deleted: {id}");
    }
    Ok(0)
}

async fn version(c: &mut Ctx, _a: &[String]) -> Res<i32> {
    let mut rt = c.rt().await?;
    let r = rt
        .version(c.req(cri::VersionRequest {
            version: "v1".into(),
        }))
        .await
        .map_err(grpc("version".into()))?
        .into_inner();
    println!("Version:  {}", r.version);
    println!("RuntimeName:  {}", r.runtime_name);
    println!("RuntimeVersion:  {}", r.runtime_version);
    println!("RuntimeApiVersion:  {}", r.runtime_api_version);
    Ok(0)
}

async fn info(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(a, INSPECT_FLAGS, true)?;
    let mut rt = c.rt().await?;
    let r = rt
        .status(c.req(cri::StatusRequest { verbose: true }))
        .await
        .map_err(grpc("info".into()))?
        .into_inner();
    let status = output::to_pb(&r.status.unwrap_or_default(), Kind::Other);
    let handlers = (!r.runtime_handlers.is_empty()).then(|| {
        (
            "runtimeHandlers",
            Value::Array(
                r.runtime_handlers
                    .iter()
                    .map(|h| output::to_pb(h, Kind::Other))
                    .collect(),
            ),
        )
    });
    print_doc(&p, &output::status_info(status, handlers, &r.info))?;
    Ok(0)
}

async fn list_stats(
    c: &mut Ctx,
    filter: &cri::ContainerStatsFilter,
) -> Res<Vec<cri::ContainerStats>> {
    let mut rt = c.rt().await?;
    let r = rt
        .list_container_stats(c.req(cri::ListContainerStatsRequest {
            filter: Some(filter.clone()),
        }))
        .await
        .map_err(grpc("stats".into()))?;
    Ok(r.into_inner().stats)
}

/// `stats`: crictl's one-shot table (CPU % over a --seconds sample); no --watch.
async fn stats(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[
            b(&["all", "a"]),
            v(&["id"]),
            v(&["pod", "p"]),
            v(&["label"]),
            v(&["output", "o"]),
            v(&["seconds", "s"]),
        ],
        true,
    )?;
    let id = match p.get("id").or(p.pos.first().map(|s| s.as_str())) {
        Some(id) => c.resolve_container(id).await?,
        None => String::new(),
    };
    let pod = match p.get("pod").filter(|s| !s.is_empty()) {
        Some(id) => c.resolve_pod(id).await?,
        None => String::new(),
    };
    let filter = cri::ContainerStatsFilter {
        id,
        pod_sandbox_id: pod,
        label_selector: labels(&p)?,
    };
    let first = list_stats(c, &filter).await?;
    if let Some(o @ ("json" | "yaml")) = p.get("output") {
        let v = json!({"stats": first.iter().map(|x| output::to_pb(x, Kind::Other)).collect::<Vec<_>>()});
        println!("{}", output::render(&v, o, None)?);
        return Ok(0);
    }
    let secs = match p.get("seconds") {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| format!("invalid --seconds {s:?}"))?,
        None => 1,
    };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let second = list_stats(c, &filter).await?;
    let key = |s: &cri::ContainerStats| {
        s.attributes
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default()
    };
    let old: std::collections::HashMap<String, &cri::ContainerStats> =
        first.iter().map(|s| (key(s), s)).collect();
    let mut rows = vec![[
        "CONTAINER",
        "NAME",
        "CPU %",
        "MEM",
        "DISK",
        "INODES",
        "SWAP",
    ]
    .map(String::from)
    .to_vec()];
    for s in &second {
        let cpu_of = |s: &cri::ContainerStats| {
            let c = s.cpu.unwrap_or_default();
            (
                c.usage_core_nano_seconds.map(|v| v.value).unwrap_or(0),
                c.timestamp,
            )
        };
        let (cpu, ts) = cpu_of(s);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map(|v| v.value)
            .unwrap_or(0);
        let fs = s.writable_layer.clone().unwrap_or_default();
        let disk = fs.used_bytes.map(|v| v.value).unwrap_or(0);
        let inodes = fs.inodes_used.map(|v| v.value).unwrap_or(0);
        let swap = s
            .swap
            .as_ref()
            .and_then(|w| w.swap_usage_bytes.as_ref())
            .map(|v| v.value)
            .unwrap_or(0);
        if !p.has("all") && cpu == 0 && mem == 0 {
            continue;
        }
        let Some(prev) = old.get(&key(s)) else {
            continue;
        };
        let (pcpu, pts) = cpu_of(prev);
        let perc = if cpu != 0 && ts != pts {
            cpu.saturating_sub(pcpu) as f64 / (ts - pts) as f64 * 100.0
        } else {
            0.0
        };
        let attrs = s.attributes.clone().unwrap_or_default();
        rows.push(vec![
            output::trunc_id(&attrs.id, false),
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            format!("{perc:.2}"),
            output::human_size(mem, 4),
            output::human_size(disk, 4),
            inodes.to_string(),
            output::human_size(swap, 4),
        ]);
    }
    print!("{}", output::table(&rows));
    Ok(0)
}

/// One CRI log line: `<RFC3339Nano> <stdout|stderr> <P|F> <message>`.
fn parse_log_line(line: &str) -> Option<(&str, bool, bool, &str)> {
    let mut it = line.splitn(4, ' ');
    let ts = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let msg = it.next().unwrap_or("");
    Some((
        ts,
        stream == "stderr",
        tag.split(':').any(|t| t == "P"),
        msg,
    ))
}

fn emit_log(line: &str, timestamps: bool) {
    match parse_log_line(line) {
        Some((ts, is_err, partial, msg)) => {
            let text = match (timestamps, partial) {
                (true, true) => format!("{ts} {msg}"),
                (true, false) => format!("{ts} {msg}\n"),
                (false, true) => msg.to_string(),
                (false, false) => format!("{msg}\n"),
            };
            if is_err {
                let _ = std::io::stdout().flush();
                eprint!("{text}");
            } else {
                print!("{text}");
            }
        }
        None => println!("{line}"),
    }
}

async fn logs(c: &mut Ctx, a: &[String]) -> Res<i32> {
    let p = args::parse(
        a,
        &[
            b(&["follow", "f"]),
            v(&["tail"]),
            b(&["timestamps", "t"]),
            b(&["previous", "p"]),
            v(&["since"]),
            v(&["limit-bytes"]),
        ],
        true,
    )?;
    need(&p, 1, "logs [-f] [--tail N] [-t] ID")?;
    let id = c.resolve_container(&p.pos[0]).await?;
    let st = c
        .container_status(&id, false)
        .await?
        .status
        .unwrap_or_default();
    if st.log_path.is_empty() {
        return Err(format!("logs {id}: the container has no log path"));
    }
    let data =
        std::fs::read(&st.log_path).map_err(|e| format!("logs {id}: read {}: {e}", st.log_path))?;
    let text = String::from_utf8_lossy(&data);
    // Only complete lines: a trailing fragment is re-read when following.
    let complete = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let lines: Vec<&str> = text[..complete].lines().collect();
    let tail = match p.get("tail") {
        Some(n) if n != "-1" => n
            .parse::<usize>()
            .map_err(|_| format!("invalid --tail {n:?}"))?,
        _ => lines.len(),
    };
    let ts = p.has("timestamps");
    for l in &lines[lines.len().saturating_sub(tail)..] {
        emit_log(l, ts);
    }
    let _ = std::io::stdout().flush();
    if !p.has("follow") {
        return Ok(0);
    }
    let mut offset = complete as u64;
    let mut polls = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let data = match std::fs::read(&st.log_path) {
            Ok(d) => d,
            Err(_) => break,
        };
        if (data.len() as u64) < offset {
            offset = 0; // rotated or truncated
        }
        let new = &data[offset as usize..];
        if let Some(end) = new.iter().rposition(|&b| b == b'\n') {
            for l in String::from_utf8_lossy(&new[..=end]).lines() {
                emit_log(l, ts);
            }
            let _ = std::io::stdout().flush();
            offset += end as u64 + 1;
            continue;
        }
        polls += 1;
        if polls.is_multiple_of(5) {
            let state = c
                .container_status(&id, false)
                .await
                .ok()
                .and_then(|r| r.status)
                .map(|s| s.state);
            if state != Some(cri::ContainerState::ContainerRunning as i32)
                && state != Some(cri::ContainerState::ContainerCreated as i32)
            {
                break;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_ids() {
        let items = [("abcdef", "web"), ("abd123", "db"), ("ff00", "abc")];
        let r = |id: &str| resolve(id, "container", items.iter().copied());
        assert_eq!(r("abcdef").unwrap(), "abcdef");
        assert_eq!(r("abc").unwrap(), "abcdef"); // id prefix wins over a name
        assert!(r("ab").is_err());
        assert_eq!(r("f").unwrap(), "ff00");
        assert_eq!(r("db").unwrap(), "abd123");
        assert_eq!(r("zzz").unwrap(), "zzz");
        assert!(r("").is_err());
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_log_line("2024-01-01T00:00:00.000000000Z stdout F hello world"),
            Some((
                "2024-01-01T00:00:00.000000000Z",
                false,
                false,
                "hello world"
            ))
        );
        assert_eq!(
            parse_log_line("2024-01-01T00:00:00Z stderr P part"),
            Some(("2024-01-01T00:00:00Z", true, true, "part"))
        );
        assert_eq!(parse_log_line("t stdout F").unwrap().3, "");
    }

    #[test]
    fn tags() {
        assert_eq!(
            split_tag("localhost:5000/busybox:latest"),
            ("localhost:5000/busybox".into(), "latest".into())
        );
        assert_eq!(
            split_tag("localhost:5000/busybox"),
            ("localhost:5000/busybox".into(), "<none>".into())
        );
    }

    #[test]
    fn config_file_lines() {
        let dir = std::env::temp_dir().join(format!("crictl-cfg-{}", std::process::id()));
        std::fs::write(
            &dir,
            "runtime-endpoint: \"unix:///x.sock\"\ntimeout: 5 # s\n",
        )
        .unwrap();
        let m = config_file(dir.to_str().unwrap());
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(m["runtime-endpoint"], "unix:///x.sock");
        assert_eq!(m["timeout"], "5");
    }
}
