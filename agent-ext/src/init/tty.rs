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
use nix::unistd::{getpid, getsid};

use super::{signals, Error};

/// Gives up the controlling terminal if stdin is the init's controlling
/// terminal and the init leads its session; returns whether it did, i.e.
/// whether the workload must take the terminal.
///
/// Otherwise (no terminal, or one the init's session does not own, as when
/// the init is started from a shell) nothing changes and the workload runs
/// without a controlling terminal, like under `setsid(1)`.
pub fn release_controlling_tty() -> Result<bool, Error> {
    let stdin = libc::STDIN_FILENO;
    // SAFETY: plain libc calls on fd 0.
    if unsafe { libc::isatty(stdin) } != 1 {
        return Ok(false);
    }
    let me = getpid();
    if getsid(None) != Ok(me) {
        return Ok(false);
    }
    // SAFETY: plain libc call on fd 0.
    if unsafe { libc::tcgetsid(stdin) } != me.as_raw() {
        return Ok(false);
    }
    // SAFETY: TIOCNOTTY takes no argument.
    if unsafe { libc::ioctl(stdin, libc::TIOCNOTTY) } < 0 {
        return Err(Error::Setup(
            "give up controlling terminal (TIOCNOTTY)",
            Errno::last(),
        ));
    }
    // The init is blocking all signals, so the SIGHUP and SIGCONT sent to
    // its process group are pending: drop them rather than forward them.
    for sig in [libc::SIGHUP, libc::SIGCONT] {
        signals::discard_pending(sig)
            .map_err(|errno| Error::Setup("discard terminal hangup signal", errno))?;
    }
    Ok(true)
}

/// In the workload, after `setsid`: makes stdin its controlling terminal
/// and its process group the foreground one.
pub fn take_controlling_tty() -> Result<(), (&'static str, Errno)> {
    let stdin = libc::STDIN_FILENO;
    // SAFETY: TIOCSCTTY with 0: do not steal from another session.
    if unsafe { libc::ioctl(stdin, libc::TIOCSCTTY, 0) } < 0 {
        return Err(("take controlling terminal (TIOCSCTTY)", Errno::last()));
    }
    // SAFETY: plain libc call on fd 0. Signals are still blocked, so no
    // SIGTTOU can stop us.
    if unsafe { libc::tcsetpgrp(stdin, getpid().as_raw()) } < 0 {
        return Err(("become foreground process group", Errno::last()));
    }
    Ok(())
}
