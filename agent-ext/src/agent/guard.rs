//! `kata-cr-agent criu-guard [--on-loss FILE VALUE] -- PROG [ARG...]`: runs
//! criu dump so that it cannot outlive the daemon, and so that the freezer
//! state the dump found is put back even when the daemon is killed.
//!
//! criu dump with `--freeze-cgroup` thaws the (engine-frozen) cgroup once it
//! has seized the tasks and freezes it again only at the end of a dump that
//! runs its course. If criu is killed half-way, the tasks run on in a thawed
//! cgroup while the engine believes the task paused: its resume then fails
//! ("container not paused") and the task stays PAUSED in the engine's eyes
//! for good. The daemon puts the freezer back itself when criu fails or
//! times out; this helper covers the daemon's own death:
//!
//! - It asks for `SIGTERM` when the daemon dies (`PR_SET_PDEATHSIG`), and
//!   its child (criu) for `SIGKILL` when the helper dies.
//! - On `SIGTERM`/`SIGINT` it kills criu, waits for it, writes `VALUE` into
//!   `FILE` (`FROZEN` into the cgroup's `freezer.state`, `1` into
//!   `cgroup.freeze`) and exits.
//! - Otherwise it exits with criu's status (128+n when killed by signal n).
//!
//! The engine resumes the task after the failed checkpoint: if the helper
//! was first, the resume thaws it and the task runs; if the engine's resume
//! came first, the task is frozen and PAUSED alike, and a resume works.

use std::ffi::CString;
use std::io::Write as _;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, getpid, getppid, ForkResult, Pid};

/// Exit code when the helper itself fails.
pub const EXIT_SETUP: i32 = 125;
/// Exit code after the daemon's death.
pub const EXIT_DAEMON_GONE: i32 = 128 + 15;

/// What to write where if the daemon dies before criu ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnLoss {
    pub file: std::path::PathBuf,
    pub value: String,
}

/// Runs the helper; returns its exit code.
pub fn main(on_loss: Option<&OnLoss>, argv: &[String]) -> i32 {
    match run(on_loss, argv) {
        Ok(code) => code,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "kata-cr-agent criu-guard: {msg}");
            EXIT_SETUP
        }
    }
}

fn run(on_loss: Option<&OnLoss>, argv: &[String]) -> Result<i32, String> {
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("NUL byte in {a:?}")))
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err("no program".into());
    }
    let daemon = getppid();
    let mut wanted = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        wanted.add(s);
    }
    // Blocked before anything can send them: sigwait below takes them.
    wanted
        .thread_block()
        .map_err(|e| format!("block signals: {}", e.desc()))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("set the parent-death signal: {}", e.desc()))?;
    if getppid() != daemon {
        return Err("kata-cr-agent exited".into());
    }
    let guard = getpid();
    // SAFETY: the helper is single-threaded: the child may do anything
    // before exec.
    let child = match unsafe { fork() }.map_err(|e| format!("fork: {}", e.desc()))? {
        ForkResult::Child => exec_child(guard, &wanted, &argv),
        ForkResult::Parent { child } => child,
    };
    loop {
        let sig = wanted
            .wait()
            .map_err(|e| format!("waiting for signals: {}", e.desc()))?;
        match sig {
            Signal::SIGCHLD => match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("waiting for {child}: {}", e.desc())),
            },
            _ => {
                let _ = kill(child, Signal::SIGKILL);
                while let Err(Errno::EINTR) = waitpid(child, None) {}
                if let Some(l) = on_loss {
                    if let Err(e) = std::fs::write(&l.file, &l.value) {
                        let _ = writeln!(
                            std::io::stderr(),
                            "kata-cr-agent criu-guard: writing {} to {}: {e}",
                            l.value,
                            l.file.display()
                        );
                    }
                }
                return Ok(EXIT_DAEMON_GONE);
            }
        }
    }
}

fn exec_child(guard: Pid, blocked: &SigSet, argv: &[CString]) -> ! {
    let fail = |what: &str, e: Errno| -> ! {
        let _ = writeln!(
            std::io::stderr(),
            "kata-cr-agent criu-guard: {what}: {}",
            e.desc()
        );
        // SAFETY: ends the forked child without running the parent's exit
        // handlers.
        unsafe { libc::_exit(EXIT_SETUP) }
    };
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(blocked), None) {
        fail("unblock signals", e);
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail("set the parent-death signal", e);
    }
    if getppid() != guard {
        fail("the guard exited", Errno::ESRCH);
    }
    match execvp(&argv[0], argv) {
        // Name the program: the daemon checks it exists before spawning
        // this helper, but it may have gone since.
        Err(e) => fail(&format!("exec {}", argv[0].to_string_lossy()), e),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the guard in a forked child of the test (its "daemon"), with
    /// `prog`; kills the daemon side if `kill_daemon`.
    #[test]
    fn the_freezer_is_put_back_when_the_daemon_dies() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("freezer.state");
        std::fs::write(&state, "THAWED").unwrap();
        let on_loss = OnLoss {
            file: state.clone(),
            value: "FROZEN".into(),
        };
        // A stand-in daemon that starts the guard and dies at once.
        // SAFETY: the child only forks/execs and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // SAFETY: as above.
                match unsafe { fork() }.unwrap() {
                    ForkResult::Child => {
                        let code = main(Some(&on_loss), &["sleep".into(), "100000".into()]);
                        // SAFETY: ends the forked child.
                        unsafe { libc::_exit(code) }
                    }
                    ForkResult::Parent { .. } => {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        // SAFETY: ends the stand-in daemon.
                        unsafe { libc::_exit(0) }
                    }
                }
            }
            ForkResult::Parent { child } => {
                waitpid(child, None).unwrap();
            }
        }
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(&state).unwrap() != "FROZEN" {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "not put back"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The guard's exit code for `argv`, run in a forked child (it must be
    /// single-threaded, as in the daemon, to take its signals).
    fn guarded(argv: &[&str]) -> i32 {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        // SAFETY: the child runs the guard and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = main(None, &argv);
                // SAFETY: ends the forked child.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, code) => code,
                other => panic!("{other:?}"),
            },
        }
    }

    #[test]
    fn criu_s_status_is_the_guard_s() {
        assert_eq!(guarded(&["sh", "-c", "exit 7"]), 7);
        assert_eq!(guarded(&["sh", "-c", "kill -9 $$"]), 128 + 9);
        assert_eq!(guarded(&[]), EXIT_SETUP);
    }
}
