//! Errors of the service, and the ttrpc status each one answers with.

use ttrpc::Code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request names no sandbox, or one that cannot name a directory.
    #[error("{0}")]
    InvalidArgument(String),
    /// CreateVM for a sandbox that already has a VM.
    #[error("{0}")]
    AlreadyExists(String),
    /// StartVM for a sandbox without CreateVM.
    #[error("{0}")]
    NotFound(String),
    /// The VM could not come up (qemu, the kernel or the guest failed); the
    /// message carries the console's tail.
    #[error("{0}")]
    VmFailed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
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

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::VmFailed(_) => Code::UNAVAILABLE,
            Error::Io { .. } => Code::INTERNAL,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code_and_keeps_its_message() {
        for (e, code) in [
            (
                Error::InvalidArgument("bad id".into()),
                Code::INVALID_ARGUMENT,
            ),
            (Error::AlreadyExists("twice".into()), Code::ALREADY_EXISTS),
            (Error::NotFound("who".into()), Code::NOT_FOUND),
            (Error::VmFailed("console".into()), Code::UNAVAILABLE),
            (
                Error::io("spawn qemu", std::io::Error::other("boom")),
                Code::INTERNAL,
            ),
        ] {
            let msg = e.to_string();
            match ttrpc::Error::from(e) {
                ttrpc::Error::RpcStatus(s) => {
                    assert_eq!(s.code(), code);
                    assert_eq!(s.message(), msg);
                }
                other => panic!("not a status: {other:?}"),
            }
        }
    }
}
