//! Errors of the init and their exit codes.

use std::fmt;

use nix::errno::Errno;

/// Something that ends the init before or while it runs the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Command line not understood.
    Usage(String),
    /// Setting the init up failed (`what` names the step).
    Setup(&'static str, Errno),
    /// `fork` failed.
    Fork(Errno),
    /// Waiting for children or reading the signalfd failed.
    Supervise(&'static str, Errno),
    /// Restore mode: the restore failed, or adopting the restored workload
    /// (joining its mount namespace, dropping capabilities) failed.
    Restore(String),
    /// Exec mode: setting the exec's capabilities or seccomp filter failed.
    Exec(String),
}

impl Error {
    /// Exit code of the init for this error (see the module documentation).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 120,
            Error::Setup(..) => 121,
            Error::Fork(_) => 122,
            Error::Supervise(..) => 124,
            Error::Restore(_) => 125,
            Error::Exec(_) => 123,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(
                f,
                "{msg}; usage: kata-cr-init [--restore --keep-caps <hex> [--deny-setns] | --exec --caps <B:E:P:I:A> [--deny-setns]] -- <command> [<arg>...]"
            ),
            Error::Setup(what, errno) => write!(f, "{what}: {}", errno.desc()),
            Error::Fork(errno) => write!(f, "fork: {}", errno.desc()),
            Error::Supervise(what, errno) => write!(f, "{what}: {}", errno.desc()),
            Error::Restore(msg) => write!(f, "restore: {msg}"),
            Error::Exec(msg) => write!(f, "exec: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_in_1xx() {
        let errors = [
            Error::Usage(String::new()),
            Error::Setup("x", Errno::EPERM),
            Error::Fork(Errno::EAGAIN),
            Error::Supervise("x", Errno::EINVAL),
            Error::Restore(String::new()),
            Error::Exec(String::new()),
        ];
        let mut codes: Vec<i32> = errors.iter().map(Error::exit_code).collect();
        assert!(codes.iter().all(|c| (120..126).contains(c)));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }

    #[test]
    fn display_names_step_and_cause() {
        let err = Error::Setup("block signals", Errno::EINVAL);
        assert_eq!(err.to_string(), "block signals: Invalid argument");
    }
}
