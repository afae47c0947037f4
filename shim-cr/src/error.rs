//! One error type for the proxy, mapped to the ttrpc codes containerd
//! understands, so an operator sees *why* (which container, which path).

use ttrpc::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("inner shim {binary}: {reason}")]
    InnerShim { binary: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ttrpc: {0}")]
    Ttrpc(#[from] ttrpc::Error),
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::Error),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::Protobuf(_) => Code::INVALID_ARGUMENT,
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::Aborted(_) => Code::ABORTED,
            Error::FailedPrecondition(_) | Error::Config { .. } | Error::InnerShim { .. } => {
                Code::FAILED_PRECONDITION
            }
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Code::NOT_FOUND
            }
            Error::Ttrpc(ttrpc::Error::RpcStatus(s)) => s.code(),
            Error::Io { .. } | Error::Ttrpc(_) | Error::Internal(_) => Code::INTERNAL,
        }
    }

    pub fn to_status(&self) -> Status {
        if let Error::Ttrpc(ttrpc::Error::RpcStatus(s)) = self {
            return s.clone();
        }
        ttrpc::get_status(self.code(), self.to_string())
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

    #[test]
    fn codes_follow_the_kind_of_failure() {
        assert_eq!(
            Error::InvalidArgument("x".into()).code(),
            Code::INVALID_ARGUMENT
        );
        assert_eq!(
            Error::FailedPrecondition("x".into()).code(),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(Error::NotFound("x".into()).code(), Code::NOT_FOUND);
        assert_eq!(Error::Aborted("x".into()).code(), Code::ABORTED);
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::io("open /x", nf).code(), Code::NOT_FOUND);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Error::io("open /x", denied).code(), Code::INTERNAL);
    }

    #[test]
    fn inner_status_survives_unchanged() {
        let s = ttrpc::get_status(Code::ALREADY_EXISTS, "id exists");
        let e = Error::Ttrpc(ttrpc::Error::RpcStatus(s.clone()));
        assert_eq!(e.to_status(), s);
        assert_eq!(e.code(), Code::ALREADY_EXISTS);
    }

    #[test]
    fn message_carries_context() {
        let e = Error::io("open /b/config.json", std::io::Error::other("boom"));
        let st = e.to_status();
        assert!(st.message().contains("/b/config.json"));
    }
}
