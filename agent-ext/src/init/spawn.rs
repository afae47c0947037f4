//! Forking the workload: session, terminal, signals, exec.

use std::ffi::{CStr, CString};

use nix::errno::Errno;
use nix::unistd::{execvp, fork, setsid, ForkResult, Pid};

use super::{signals, tty, Command, Error, PROG};

/// Exit code when the workload could not be set up before exec.
pub const EXIT_CHILD_SETUP: i32 = 123;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// What the forked workload must do before exec.
#[derive(Debug, Clone, Copy)]
pub struct ChildSetup {
    /// Signal mask to restore (the init's original one).
    pub original_mask: signals::Mask,
    /// Whether to take stdin as controlling terminal (the init released it).
    pub take_tty: bool,
}

/// Forks the workload and returns its pid. The workload never returns
/// here: it execs or exits with [`EXIT_CHILD_SETUP`], [`EXIT_NOT_EXECUTABLE`]
/// or [`EXIT_NOT_FOUND`] after a message on stderr.
pub fn spawn(command: &Command, setup: &ChildSetup) -> Result<Pid, Error> {
    // SAFETY: the init is single-threaded, so the child may run any code
    // (nix's execvp allocates its argument array); it ends in exec or
    // `_exit` and never returns from `exec_child`.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => exec_child(command.program(), command.argv(), setup),
        Err(errno) => Err(Error::Fork(errno)),
    }
}

/// The exit code for a failed exec, as runc and shells use them.
pub fn exec_exit_code(errno: Errno) -> i32 {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    }
}

fn exec_child(program: &CStr, argv: &[CString], setup: &ChildSetup) -> ! {
    // A new session: CRIU needs the dumped tree's root to lead one. The
    // child of a fork is never a process group leader, so this succeeds.
    if let Err(errno) = setsid() {
        die(&[b"setsid"], errno, EXIT_CHILD_SETUP);
    }
    if setup.take_tty {
        if let Err((what, errno)) = tty::take_controlling_tty() {
            die(&[what.as_bytes()], errno, EXIT_CHILD_SETUP);
        }
    }
    if let Err(errno) = signals::reset_for_exec(setup.original_mask) {
        die(&[b"restore signal mask"], errno, EXIT_CHILD_SETUP);
    }
    let Err(errno) = execvp(program, argv);
    die(
        &[b"exec ", program.to_bytes()],
        errno,
        exec_exit_code(errno),
    )
}

/// Writes `kata-cr-init: <context>: <error>` to stderr and exits the
/// forked child without running the init's exit handlers.
fn die(context: &[&[u8]], errno: Errno, code: i32) -> ! {
    let mut msg = Vec::with_capacity(128);
    msg.extend_from_slice(PROG.as_bytes());
    msg.extend_from_slice(b": ");
    for part in context {
        msg.extend_from_slice(part);
    }
    msg.extend_from_slice(b": ");
    msg.extend_from_slice(errno.desc().as_bytes());
    msg.push(b'\n');
    write_stderr(&msg);
    // SAFETY: ends the forked child without the parent's exit handlers
    // (std's exit would run them); nix has no wrapper for `_exit`.
    unsafe { libc::_exit(code) }
}

fn write_stderr(mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(std::io::stderr(), buf) {
            Err(Errno::EINTR) => continue,
            Ok(0) | Err(_) => return,
            Ok(n) => buf = &buf[n..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_map_like_runc() {
        assert_eq!(exec_exit_code(Errno::ENOENT), 127);
        assert_eq!(exec_exit_code(Errno::ENOTDIR), 127);
        assert_eq!(exec_exit_code(Errno::EACCES), 126);
        assert_eq!(exec_exit_code(Errno::ENOEXEC), 126);
    }
}
