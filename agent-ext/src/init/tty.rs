//! Handing the controlling terminal from the init to the workload.
//!
//! With `terminal: true` the runtime starts the init as a session leader
//! whose controlling terminal is stdin. The workload runs in its own session
//! (CRIU needs a session leader), and a terminal belongs to one session, so
//! the init gives it up before forking and the workload takes it after
//! `setsid`. Releasing before the fork (rather than after, with the workload
//! waiting on a pipe) orders the two steps without a handshake, and the
//! SIGHUP/SIGCONT that `TIOCNOTTY` sends to the foreground process group
//! then reaches only the init, which discards it.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::termios::tcgetsid;
use nix::unistd::{getpid, getsid, isatty, tcsetpgrp};

use super::{signals, Error};

/// Gives up the controlling terminal if stdin is the init's controlling
/// terminal and the init leads its session; returns whether it did, i.e.
/// whether the workload must take the terminal.
///
/// Otherwise (no terminal, or one the init's session does not own, as when
/// the init is started from a shell) nothing changes and the workload runs
/// without a controlling terminal, like under `setsid(1)`.
pub fn release_controlling_tty() -> Result<bool, Error> {
    let stdin = std::io::stdin();
    if isatty(&stdin) != Ok(true) {
        return Ok(false);
    }
    let me = getpid();
    if getsid(None) != Ok(me) {
        return Ok(false);
    }
    if tcgetsid(&stdin) != Ok(me) {
        return Ok(false);
    }
    // SAFETY: TIOCNOTTY takes no argument. nix has no wrapper for it (its
    // ioctl macros generate unsafe functions of the same call).
    if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCNOTTY) } < 0 {
        return Err(Error::Setup(
            "give up controlling terminal (TIOCNOTTY)",
            Errno::last(),
        ));
    }
    // The init is blocking all signals, so the SIGHUP and SIGCONT sent to
    // its process group are pending: drop them rather than forward them.
    for sig in [Signal::SIGHUP, Signal::SIGCONT] {
        signals::discard_pending(sig)
            .map_err(|errno| Error::Setup("discard terminal hangup signal", errno))?;
    }
    Ok(true)
}

/// In the workload, after `setsid`: makes stdin its controlling terminal
/// and its process group the foreground one.
pub fn take_controlling_tty() -> Result<(), (&'static str, Errno)> {
    // SAFETY: TIOCSCTTY with 0: do not steal from another session. nix has
    // no wrapper for it.
    if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0) } < 0 {
        return Err(("take controlling terminal (TIOCSCTTY)", Errno::last()));
    }
    // Signals are still blocked, so no SIGTTOU can stop us.
    tcsetpgrp(std::io::stdin(), getpid()).map_err(|e| ("become foreground process group", e))
}
