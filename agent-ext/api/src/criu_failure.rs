//! How kata-cr-agent reports a failed criu run, in the message of a
//! FAILED_PRECONDITION status: the first line says which criu operation
//! failed and quotes criu's first error line, then comes the tail of criu's
//! log, and a line [`full_log_line`] says where the whole log is kept. The
//! proxy reads it back with [`parse_criu_failure`] to name the cause.

use std::path::Path;

const FULL_LOG_PREFIX: &str = "--- full log: ";
const FULL_LOG_SUFFIX: &str = " ---";

/// The line of a criu failure message that names the full log.
pub fn full_log_line(log_path: &Path) -> String {
    format!("{FULL_LOG_PREFIX}{}{FULL_LOG_SUFFIX}", log_path.display())
}

/// A criu failure, as read from a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriuFailure<'a> {
    /// The first line: the operation, criu's exit and its first error line.
    pub summary: &'a str,
    /// Where the agent keeps criu's whole log (as the agent sees it).
    pub log_path: &'a str,
}

/// The criu failure `message` reports, if it reports one.
pub fn parse_criu_failure(message: &str) -> Option<CriuFailure<'_>> {
    let summary = message.lines().next()?;
    if !summary.starts_with("criu ") {
        return None;
    }
    let log_path = message.lines().find_map(|l| {
        l.strip_prefix(FULL_LOG_PREFIX)?
            .strip_suffix(FULL_LOG_SUFFIX)
    })?;
    Some(CriuFailure { summary, log_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_message_reads_back() {
        let log = Path::new("/run/kata-cr/work/c1-dump/dump.log");
        let msg = format!(
            "criu dump failed (exit status: 1): (00.01) Error (criu/tty.c:1): tty: foreign\n\
             --- last 2 lines of criu's log {} ---\nline a\nline b\n{}\nsee the container's stderr",
            log.display(),
            full_log_line(log)
        );
        let f = parse_criu_failure(&msg).unwrap();
        assert!(f.summary.ends_with("tty: foreign"), "{f:?}");
        assert_eq!(f.log_path, log.to_str().unwrap());
    }

    #[test]
    fn other_messages_are_not_criu_failures() {
        assert_eq!(parse_criu_failure(""), None);
        assert_eq!(parse_criu_failure("no kata-cr container is running"), None);
        assert_eq!(parse_criu_failure("criu dump failed: no log line"), None);
    }
}
