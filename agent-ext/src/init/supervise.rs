//! Supervising the workload: forward signals, reap every child, and turn
//! the workload's wait status into the init's exit code.

use libc::c_int;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::signals::{self, Signals};
use super::Error;

/// Forwards signals to `workload` and reaps children until `workload`
/// exits; returns the exit code the init must exit with.
///
/// Usable for any workload that is a child of the init, however it came to
/// be one (forked now, or restored by CRIU in a later mode).
pub fn supervise(workload: Pid, signals: &Signals) -> Result<i32, Error> {
    let as_pid1 = nix::unistd::getpid().as_raw() == 1;
    loop {
        // Reap before waiting: a SIGCHLD may stand for several exits, and
        // the workload may be gone before the first signal is read.
        if let Some(code) = reap_all(workload)? {
            reap_exited_orphans();
            return Ok(code);
        }
        let sig = signals.next()?;
        if sig != libc::SIGCHLD && (!as_pid1 || workload_would_get(workload, sig)) {
            signals::forward(workload, sig);
        }
    }
}

/// Whether the workload, were it PID 1 of the container as without
/// kata-cr, would receive `sig`: the kernel drops a signal sent to a pid
/// namespace's init unless the init handles or ignores it. Forwarding only
/// those keeps `kill -INT` of a handler-less `sleep` a no-op, as with runc.
fn workload_would_get(workload: Pid, sig: c_int) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/status", workload.as_raw())) {
        Ok(status) => handles_or_ignores(&status, sig),
        // Gone or unreadable: forwarding is harmless and errs towards delivery.
        Err(_) => true,
    }
}

/// Reads `SigCgt` (handled) and `SigIgn` (ignored) from a `/proc/PID/status`.
pub fn handles_or_ignores(status: &str, sig: c_int) -> bool {
    if !(1..=64).contains(&sig) {
        return true;
    }
    let bit = 1u64 << (sig - 1);
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    match (mask("SigCgt:"), mask("SigIgn:")) {
        (Some(cgt), Some(ign)) => (cgt | ign) & bit != 0,
        _ => true,
    }
}

/// Reaps every child that has exited, without blocking. Returns the exit
/// code of `workload` if it was among them.
fn reap_all(workload: Pid) -> Result<Option<i32>, Error> {
    let mut workload_code = None;
    loop {
        let mut status: c_int = 0;
        // SAFETY: plain syscall writing to `status`. Not nix's waitpid: its
        // WaitStatus cannot carry a real-time signal, and the workload's
        // status must survive whatever killed it (128+n).
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Ok(workload_code),
            -1 => match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD if workload_code.is_some() => return Ok(workload_code),
                // The workload is our child until we reap it: ECHILD
                // before that means someone else reaped it.
                errno => return Err(Error::Supervise("wait for children", errno)),
            },
            pid if pid == workload.as_raw() => workload_code = exit_code(status),
            _ => {}
        }
    }
}

/// Collects orphans that have already exited, once, ignoring errors
/// (ECHILD when none are left). Running ones are not waited for: the
/// runtime kills them when the init exits.
fn reap_exited_orphans() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            // EINVAL: reaped, but killed by a real-time signal nix's
            // WaitStatus cannot name; the status is not needed here.
            Ok(_) | Err(Errno::EINTR | Errno::EINVAL) => continue,
            Err(_) => return,
        }
    }
}

/// The shell convention: the exit code, or 128+n when killed by signal n.
/// `None` for a stop or continue report (not requested, so not expected).
pub fn exit_code(status: c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid1_signal_rule_reads_caught_and_ignored_masks() {
        // SIGTERM (15) caught, SIGINT (2) ignored, SIGHUP (1) default.
        let status = "Name:\tsh\nSigIgn:\t0000000000000002\nSigCgt:\t0000000000004000\n";
        assert!(handles_or_ignores(status, libc::SIGTERM));
        assert!(handles_or_ignores(status, libc::SIGINT));
        assert!(!handles_or_ignores(status, libc::SIGHUP));
        assert!(
            handles_or_ignores("garbage", libc::SIGHUP),
            "unreadable: deliver"
        );
    }

    #[test]
    fn exit_code_from_wait_status() {
        assert_eq!(exit_code(0), Some(0));
        assert_eq!(exit_code(3 << 8), Some(3));
        assert_eq!(exit_code(255 << 8), Some(255));
        assert_eq!(exit_code(libc::SIGKILL), Some(137));
        // Killed by SIGSEGV with a core dump.
        assert_eq!(exit_code(0x80 | libc::SIGSEGV), Some(139));
        // Real-time signals too (nix's WaitStatus cannot represent them).
        assert_eq!(
            exit_code(libc::SIGRTMIN() + 3),
            Some(128 + libc::SIGRTMIN() + 3)
        );
        // Stopped by SIGTSTP.
        assert_eq!(exit_code((libc::SIGTSTP << 8) | 0x7f), None);
    }
}
