//! The daemon's error type and its mapping to ttrpc status codes.

use ttrpc::Code;

/// Everything an RPC of the daemon can fail with. Each variant maps to one
/// ttrpc code ([`Error::code`]); the message is what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request, or an unsafe path in the container's rootfs.
    #[error("{0}")]
    InvalidArgument(String),
    /// No such container.
    #[error("{0}")]
    NotFound(String),
    /// The target of the operation already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Another operation on the same container is in progress.
    #[error("{0}")]
    Aborted(String),
    /// criu is missing or failed; the message carries its log tail.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An operation of the daemon itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What the daemon was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The ttrpc status code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::Aborted(_) => Code::ABORTED,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::Io { .. } => Code::INTERNAL,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(err: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(err.code(), err.to_string()))
    }
}

/// Result of the daemon's operations.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_code_and_keeps_the_message() {
        let cases = [
            (Error::InvalidArgument("a".into()), Code::INVALID_ARGUMENT),
            (Error::NotFound("a".into()), Code::NOT_FOUND),
            (Error::AlreadyExists("a".into()), Code::ALREADY_EXISTS),
            (Error::Aborted("a".into()), Code::ABORTED),
            (
                Error::FailedPrecondition("a".into()),
                Code::FAILED_PRECONDITION,
            ),
            (
                Error::io("a", std::io::Error::from_raw_os_error(libc::EIO)),
                Code::INTERNAL,
            ),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            match ttrpc::Error::from(err) {
                ttrpc::Error::RpcStatus(status) => {
                    assert_eq!(status.code(), code);
                    assert_eq!(status.message(), text);
                }
                other => panic!("not a status: {other:?}"),
            }
        }
    }
}
