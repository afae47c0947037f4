//! The agent's messages as the proxy reads them through `kata-cr-api`: a
//! change to either side that breaks the other fails here.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;

use agent_ext::agent::criu::{failure_message, CriuLog, Outcome};
use agent_ext::api;

#[test]
fn criu_failures_name_their_first_error_and_log() {
    let outcome = Outcome {
        status: std::process::ExitStatus::from_raw(1 << 8),
        stdout: String::new(),
        stderr: String::new(),
        timed_out: None,
    };
    let log = "(00.001) Error (criu/cr-dump.c:1): Dumping FAILED.\n(00.002) more\n";
    let path = Path::new("/run/kata-cr/work/c1/dump.log");
    let msg = failure_message("criu dump", &outcome, &CriuLog::from_text(log), path);
    let f = api::parse_criu_failure(&msg).unwrap_or_else(|| panic!("not read back: {msg}"));
    assert!(f.summary.contains("Dumping FAILED."), "{f:?}");
    assert_eq!(f.log_path, path.to_str().unwrap());
}
