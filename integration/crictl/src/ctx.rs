//! What every command needs: the endpoints and the time limit (from the flags, the
//! environment and crictl's config file, in crictl's order), the connections, and the
//! deadline of each call as crictl's CRI client sets them.
//!
//! crictl's `--timeout` (default 2 s; `timeout:` in the config file, in seconds) is
//! both the time to connect and the deadline of most calls. The exceptions, as in
//! k8s.io/cri-client: RunPodSandbox gets twice that; StopContainer that plus the stop
//! timeout; ExecSync none unless `exec --timeout N` (then that plus N); PullImage none
//! unless `--pull-timeout`; CheckpointContainer the larger of that and the request's
//! own timeout (which is raised to it).

use std::future::Future;
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::client;
use crate::logrus;

/// crictl's default time limit on Linux.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What crictl tries, with a warning, when no endpoint is configured.
pub const DEFAULT_ENDPOINTS: [&str; 3] = [
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

pub type Res<T> = Result<T, String>;

/// crictl's config file (`/etc/crictl.yaml`, `--config`, `$CRI_CONFIG_FILE`).
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    pub runtime_endpoint: Option<String>,
    pub image_endpoint: Option<String>,
    pub timeout: Option<Duration>,
    pub pull_image_on_create: bool,
}

impl FileConfig {
    /// Reads `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &str) -> Res<Option<FileConfig>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("load config file {path}: {e}")),
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|e| format!("load config file {path}: {e}"))
    }

    pub fn parse(text: &str) -> Res<FileConfig> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut c = FileConfig::default();
        let Some(map) = doc.as_mapping() else {
            return Ok(c);
        };
        let text_of = |v: &serde_yaml::Value| match v {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), text_of(v)) else {
                continue;
            };
            match k {
                "runtime-endpoint" if !v.is_empty() => c.runtime_endpoint = Some(v),
                "image-endpoint" if !v.is_empty() => c.image_endpoint = Some(v),
                "timeout" => {
                    let secs: i64 = v.parse().map_err(|_| format!("invalid timeout {v:?}"))?;
                    // 0 or negative: the default
                    c.timeout = (secs > 0).then(|| Duration::from_secs(secs as u64));
                }
                "pull-image-on-create" => c.pull_image_on_create = v == "true",
                _ => {}
            }
        }
        Ok(c)
    }
}

pub struct Ctx {
    /// None: try [`DEFAULT_ENDPOINTS`].
    runtime_ep: Option<String>,
    image_ep: Option<String>,
    /// crictl's `Timeout`.
    pub timeout: Duration,
    pub pull_image_on_create: bool,
    rt: Option<client::Runtime>,
    img: Option<client::Images>,
}

impl Ctx {
    pub fn new(
        runtime_ep: Option<String>,
        image_ep: Option<String>,
        timeout: Duration,
        pull_image_on_create: bool,
    ) -> Ctx {
        Ctx {
            runtime_ep,
            image_ep,
            timeout,
            pull_image_on_create,
            rt: None,
            img: None,
        }
    }

    /// The runtime service, connected and checked as crictl does (a Version call
    /// within the time limit).
    pub async fn rt(&mut self) -> Res<client::Runtime> {
        if let Some(rt) = &self.rt {
            return Ok(rt.clone());
        }
        let candidates: Vec<String> = match &self.runtime_ep {
            Some(ep) => vec![ep.clone()],
            None => {
                logrus::warn(&format!(
                    "runtime connect using default endpoints: [{}]. As the default settings are now deprecated, you should set the endpoint instead.",
                    DEFAULT_ENDPOINTS.join(" ")
                ));
                DEFAULT_ENDPOINTS.iter().map(|s| s.to_string()).collect()
            }
        };
        let mut last = String::new();
        for ep in &candidates {
            match self.connect_runtime(ep).await {
                Ok(rt) => {
                    self.rt = Some(rt.clone());
                    return Ok(rt);
                }
                Err(e) if self.runtime_ep.is_none() => {
                    logrus::error(&e);
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn connect_runtime(&self, ep: &str) -> Res<client::Runtime> {
        let validate = |e: String| {
            format!(
                "validate service connection: validate CRI v1 runtime API for endpoint {ep:?}: {e}"
            )
        };
        let ch = client::connect(ep, self.timeout)
            .await
            .map_err(|e| validate(format!("rpc error: code = Unavailable desc = {e}")))?;
        let mut rt = client::runtime(ch);
        self.call(self.timeout, rt.version(cri::VersionRequest::default()))
            .await
            .map_err(validate)?;
        Ok(rt)
    }

    /// The image service (the runtime endpoint unless one is configured).
    pub async fn img(&mut self) -> Res<client::Images> {
        if let Some(img) = &self.img {
            return Ok(img.clone());
        }
        let ep = match (&self.image_ep, &self.runtime_ep) {
            (Some(ep), _) | (None, Some(ep)) => ep.clone(),
            (None, None) => {
                logrus::warn(&format!(
                    "Image connect using default endpoints: [{}]. As the default settings are now deprecated, you should set the endpoint instead.",
                    DEFAULT_ENDPOINTS.join(" ")
                ));
                DEFAULT_ENDPOINTS[0].to_string()
            }
        };
        let ch = client::connect(&ep, self.timeout)
            .await
            .map_err(|e| format!("rpc error: code = Unavailable desc = {e}"))?;
        let img = client::images(ch);
        self.img = Some(img.clone());
        Ok(img)
    }

    /// Runs one call under `deadline`: the deadline goes to the server (grpc-timeout)
    /// and ends the wait here, as a Go context would.
    pub async fn call<T>(
        &self,
        deadline: Duration,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Res<T> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) if is_client_timeout(&s) => Err(DEADLINE_EXCEEDED.into()),
            Ok(Err(s)) => Err(rpc_error(&s)),
            Err(_) => Err(DEADLINE_EXCEEDED.into()),
        }
    }

    /// Runs one call without a deadline (ExecSync without --timeout, PullImage).
    pub async fn call_unbounded<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Res<T> {
        fut.await.map(|r| r.into_inner()).map_err(|s| rpc_error(&s))
    }

    /// A request carrying `deadline` to the server.
    pub fn req<T>(&self, msg: T, deadline: Option<Duration>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(d) = deadline {
            r.set_timeout(d);
        }
        r
    }
}

/// What grpc-go says when a call's deadline passes.
const DEADLINE_EXCEEDED: &str =
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded";

/// tonic's own end of a call whose deadline passed (its timeout layer answers
/// `Cancelled: Timeout expired`), which grpc-go reports as DeadlineExceeded.
fn is_client_timeout(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Cancelled && s.message() == "Timeout expired"
}

/// A gRPC status as grpc-go prints it: `rpc error: code = NotFound desc = ...`.
pub fn rpc_error(s: &tonic::Status) -> String {
    use tonic::Code::*;
    let code = match s.code() {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    };
    format!("rpc error: code = {code} desc = {}", s.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file() {
        let c = FileConfig::parse(
            "runtime-endpoint: unix:///x.sock\nimage-endpoint: \"\"\ntimeout: 60\npull-image-on-create: true\n",
        )
        .unwrap();
        assert_eq!(
            c,
            FileConfig {
                runtime_endpoint: Some("unix:///x.sock".into()),
                image_endpoint: None,
                timeout: Some(Duration::from_secs(60)),
                pull_image_on_create: true,
            }
        );
        assert_eq!(FileConfig::parse("timeout: 0").unwrap().timeout, None);
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
        assert!(FileConfig::parse("timeout: soon").is_err());
    }

    #[test]
    fn grpc_go_error_text() {
        let s = tonic::Status::not_found("an error occurred when try to find container \"x\"");
        assert_eq!(
            rpc_error(&s),
            "rpc error: code = NotFound desc = an error occurred when try to find container \"x\""
        );
        assert!(rpc_error(&tonic::Status::cancelled("c")).contains("code = Canceled "));
        assert!(is_client_timeout(&tonic::Status::cancelled(
            "Timeout expired"
        )));
        assert!(!is_client_timeout(&tonic::Status::cancelled(
            "by the server"
        )));
    }
}
