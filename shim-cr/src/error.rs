//! The proxy's one error type: each variant is a cause (which container,
//! which path, what criu said), and [`Error::code`] is the one mapping to
//! the ttrpc codes containerd understands. containerd's clients (ctr,
//! crictl's errors) show a status's message, not its code, so the message
//! kata-cr makes starts with the code's name.

use std::fmt;
use std::path::PathBuf;

use ttrpc::{Code, Status};

/// What kata-cr asked of kata-cr-agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Checkpoint,
    Restore,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Checkpoint => "checkpoint",
            Op::Restore => "restore",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a request, a file, a name, an image set.
    #[error("{0}")]
    InvalidArgument(String),
    /// A container this proxy did not create (not a kata-cr container).
    #[error("container {0} was not created through this kata-cr proxy")]
    UnknownContainer(String),
    /// A pod sandbox: kata-cr leaves it to the inner shim.
    #[error(
        "container {0} is a pod sandbox; kata-cr checkpoints and restores application containers"
    )]
    PodSandbox(String),
    /// A CRI container whose sandbox no kata-cr proxy serves.
    #[error("sandbox {sandbox} is not served by kata-cr ({reason}); run the pod with the kata-cr runtime")]
    PodNotServed { sandbox: String, reason: String },
    /// The container's state does not allow the request.
    #[error("container {id}: invalid state transition from {from} to {to}")]
    InvalidTransition {
        id: String,
        from: &'static str,
        to: &'static str,
        /// Another operation is under way (retrying later may work).
        busy: bool,
    },
    /// An exec'd process could pose as the workload being restored.
    #[error("container {0} is being restored; exec after Start returns")]
    ExecWhileRestoring(String),
    /// The image set cannot cross between the rootfs and this host.
    #[error("{op} of container {id}: its rootfs is not an overlay shared with the host, so the image set cannot be staged")]
    NotStageable { op: Op, id: String },
    /// criu failed in kata-cr-agent; `message` is the agent's, with criu's
    /// log tail.
    #[error("{op} of container {id}: {message}")]
    CriuFailed {
        op: Op,
        id: String,
        /// What failed and criu's first error line.
        first_line: String,
        /// Where the agent keeps criu's whole log.
        log_path: String,
        message: String,
    },
    /// kata-cr-agent refused or failed the operation; its status is kept.
    #[error("{op} of container {id}: {}", .status.message())]
    Agent { op: Op, id: String, status: Status },
    /// The connection to kata-cr-agent broke during the operation.
    #[error("{op} of container {id}: kata-cr-agent: {source}")]
    AgentLost {
        op: Op,
        id: String,
        source: ttrpc::Error,
    },
    /// kata-cr-agent could not be reached.
    #[error("kata-cr-agent unreachable at {at}: {reason}")]
    AgentUnreachable { at: String, reason: String },
    /// A step on the way to the agent in a Kata guest failed (management
    /// socket, agent URL, vsock handshake).
    #[error("{what}: {reason}")]
    Kata { what: String, reason: String },
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("kata-cr-init not found at {path} (init.binary in {configured_in})")]
    InitMissing {
        path: PathBuf,
        configured_in: String,
    },
    #[error("inner shim {binary}: {reason}")]
    InnerShim { binary: String, reason: String },
    #[error("socket {0} is already served by a running proxy")]
    SocketInUse(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("ttrpc: {0}")]
    Ttrpc(#[from] ttrpc::Error),
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::Error),
    /// A task the proxy spawned for the work panicked or was cancelled.
    #[error("{what}: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Where an error happened; the code is the cause's.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// This error, with where it happened in front.
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// kata-cr-agent's answer to `op` on container `id` as a cause: criu's
    /// failure, the agent's own status, or a broken connection.
    pub fn from_agent(op: Op, id: &str, e: ttrpc::Error) -> Self {
        let id = id.to_string();
        let ttrpc::Error::RpcStatus(status) = e else {
            return Error::AgentLost { op, id, source: e };
        };
        match kata_cr_api::parse_criu_failure(status.message()) {
            Some(f) if status.code() == Code::FAILED_PRECONDITION => Error::CriuFailed {
                op,
                id,
                first_line: f.summary.to_string(),
                log_path: f.log_path.to_string(),
                message: status.message().to_string(),
            },
            _ => Error::Agent { op, id, status },
        }
    }

    /// The ttrpc code containerd gets for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::Protobuf(_) => Code::INVALID_ARGUMENT,
            Error::UnknownContainer(_) => Code::NOT_FOUND,
            Error::InvalidTransition { busy: true, .. } => Code::ABORTED,
            Error::PodSandbox(_)
            | Error::PodNotServed { .. }
            | Error::InvalidTransition { busy: false, .. }
            | Error::ExecWhileRestoring(_)
            | Error::NotStageable { .. }
            | Error::CriuFailed { .. }
            | Error::AgentLost { .. }
            | Error::AgentUnreachable { .. }
            | Error::Kata { .. }
            | Error::Config { .. }
            | Error::InitMissing { .. }
            | Error::InnerShim { .. }
            | Error::SocketInUse(_) => Code::FAILED_PRECONDITION,
            Error::Agent { status, .. } => status.code(),
            Error::Ttrpc(ttrpc::Error::RpcStatus(s)) => s.code(),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Code::NOT_FOUND
            }
            Error::Io { .. } | Error::Json { .. } | Error::Ttrpc(_) | Error::Task { .. } => {
                Code::INTERNAL
            }
            Error::Context { source, .. } => source.code(),
        }
    }

    /// The status containerd gets: an inner shim's status unchanged,
    /// otherwise [`Error::code`] and the message `<code's name>: <cause>`.
    pub fn to_status(&self) -> Status {
        if let Error::Ttrpc(ttrpc::Error::RpcStatus(s)) = self {
            return s.clone();
        }
        let code = self.code();
        ttrpc::get_status(code, format!("{}: {self}", code_name(code)))
    }
}

/// A code as gRPC's and containerd's error texts name it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::OK => "ok",
        Code::CANCELLED => "cancelled",
        Code::UNKNOWN => "unknown",
        Code::INVALID_ARGUMENT => "invalid argument",
        Code::DEADLINE_EXCEEDED => "deadline exceeded",
        Code::NOT_FOUND => "not found",
        Code::ALREADY_EXISTS => "already exists",
        Code::PERMISSION_DENIED => "permission denied",
        Code::RESOURCE_EXHAUSTED => "resource exhausted",
        Code::FAILED_PRECONDITION => "failed precondition",
        Code::ABORTED => "aborted",
        Code::OUT_OF_RANGE => "out of range",
        Code::UNIMPLEMENTED => "unimplemented",
        Code::INTERNAL => "internal",
        Code::UNAVAILABLE => "unavailable",
        Code::DATA_LOSS => "data loss",
        Code::UNAUTHENTICATED => "unauthenticated",
    }
}

impl From<kata_cr_api::BadImageDir> for Error {
    fn from(e: kata_cr_api::BadImageDir) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

/// Extension to attach a path or action to an `io::Error`.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, msg: &str) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
    }

    #[test]
    fn every_cause_maps_to_its_code() {
        let io = |kind: std::io::ErrorKind| Error::io("open /x", kind.into());
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let cases = [
            (Error::InvalidArgument("x".into()), Code::INVALID_ARGUMENT),
            (Error::UnknownContainer("c".into()), Code::NOT_FOUND),
            (Error::PodSandbox("c".into()), Code::FAILED_PRECONDITION),
            (
                Error::InvalidTransition {
                    id: "c".into(),
                    from: "created",
                    to: "checkpointing",
                    busy: false,
                },
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::InvalidTransition {
                    id: "c".into(),
                    from: "checkpointing",
                    to: "checkpointing",
                    busy: true,
                },
                Code::ABORTED,
            ),
            (
                Error::NotStageable {
                    op: Op::Restore,
                    id: "c".into(),
                },
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::AgentUnreachable {
                    at: "unix:///s".into(),
                    reason: "gone".into(),
                },
                Code::FAILED_PRECONDITION,
            ),
            (Error::SocketInUse("/s".into()), Code::FAILED_PRECONDITION),
            (io(std::io::ErrorKind::NotFound), Code::NOT_FOUND),
            (io(std::io::ErrorKind::PermissionDenied), Code::INTERNAL),
            (
                Error::Json {
                    context: "parse".into(),
                    source: json,
                },
                Code::INTERNAL,
            ),
            (
                Error::UnknownContainer("c".into()).context("checkpoint"),
                Code::NOT_FOUND,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.to_status().code(), code, "{e}");
            let want = format!("{}: {e}", code_name(code));
            assert_eq!(e.to_status().message(), want);
        }
        let e = Error::AgentUnreachable {
            at: "unix:///run/kata-cr/agent.sock".into(),
            reason: "gone".into(),
        };
        assert_eq!(
            e.to_status().message(),
            "failed precondition: kata-cr-agent unreachable at unix:///run/kata-cr/agent.sock: gone",
            "ctr shows only the message: it names the code"
        );
    }

    #[test]
    fn inner_status_survives_unchanged() {
        let s = ttrpc::get_status(Code::ALREADY_EXISTS, "id exists");
        let e = Error::Ttrpc(ttrpc::Error::RpcStatus(s.clone()));
        assert_eq!(e.to_status(), s);
        assert_eq!(e.code(), Code::ALREADY_EXISTS);
    }

    #[test]
    fn agent_answers_become_causes() {
        let criu = format!(
            "criu dump failed (exit status: 1): Error (criu/tty.c:1): foreign tty\n--- last lines ---\nx\n{}",
            kata_cr_api::full_log_line(std::path::Path::new("/w/dump.log"))
        );
        let e = Error::from_agent(
            Op::Checkpoint,
            "c9",
            status(Code::FAILED_PRECONDITION, &criu),
        );
        let Error::CriuFailed {
            first_line,
            log_path,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert!(first_line.ends_with("foreign tty"), "{first_line}");
        assert_eq!(log_path, "/w/dump.log");
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
        assert!(e
            .to_string()
            .starts_with("checkpoint of container c9: criu dump failed"));
        assert!(e.to_string().contains("\nx\n"), "the log tail is kept: {e}");

        let e = Error::from_agent(Op::Restore, "c9", status(Code::NOT_FOUND, "no init"));
        assert!(matches!(e, Error::Agent { .. }), "{e:?}");
        assert_eq!(e.code(), Code::NOT_FOUND);
        assert_eq!(e.to_string(), "restore of container c9: no init");

        let e = Error::from_agent(Op::Restore, "c9", ttrpc::Error::RemoteClosed);
        assert!(matches!(e, Error::AgentLost { .. }), "{e:?}");
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
    }

    #[test]
    fn context_goes_in_front_and_keeps_the_cause() {
        let e = Error::InvalidArgument("a.img is not a regular file".into())
            .context("restore of container c1");
        assert_eq!(e.code(), Code::INVALID_ARGUMENT);
        assert_eq!(
            e.to_status().message(),
            "invalid argument: restore of container c1: a.img is not a regular file"
        );
    }
}
