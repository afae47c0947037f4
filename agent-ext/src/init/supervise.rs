//! Supervising the workload: forward signals, reap every child, and turn
//! the workload's wait status into the init's exit code.

use libc::c_int;
use nix::errno::Errno;
use nix::unistd::Pid;

use super::signals::{self, Signals};
use super::Error;

/// Forwards signals to `workload` and reaps children until `workload`
/// exits; returns the exit code the init must exit with.
///
/// Usable for any workload that is a child of the init, however it came to
/// be one (forked now, or restored by CRIU in a later mode).
pub fn supervise(workload: Pid, signals: &Signals) -> Result<i32, Error> {
    loop {
        // Reap before waiting: a SIGCHLD may stand for several exits, and
        // the workload may be gone before the first signal is read.
        if let Some(code) = reap_all(workload)? {
            reap_exited_orphans();
            return Ok(code);
        }
        let sig = signals.next()?;
        if sig != libc::SIGCHLD {
            signals::forward(workload, sig);
        }
    }
}

/// Reaps every child that has exited, without blocking. Returns the exit
/// code of `workload` if it was among them.
fn reap_all(workload: Pid) -> Result<Option<i32>, Error> {
    let mut workload_code = None;
    loop {
        let mut status: c_int = 0;
        // SAFETY: plain syscall writing to `status`.
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
        let mut status: c_int = 0;
        // SAFETY: plain syscall writing to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 && !(pid < 0 && Errno::last() == Errno::EINTR) {
            return;
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
