//! `kata-cr-init`, the init of every kata-cr container.
//!
//! The kata-cr proxy rewrites each container's bundle `config.json` so that
//! the container's PID 1 is `/dev/.kata-cr-init -- <original process.args...>`.
//! The init must be invisible to ordinary containers and give CRIU what it
//! needs: the workload runs as a child (so the workload subtree, not PID 1,
//! can be dumped and restored into the same pid namespace) and is a session
//! leader (CRIU requires the dumped tree's root to be one).
//!
//! In [`Mode::Run`] the init:
//! - becomes a child subreaper when it is not PID 1 (so it can be run
//!   directly, e.g. by tests);
//! - blocks every signal and receives them through a signalfd;
//! - when stdin is its controlling terminal, gives that terminal up so the
//!   workload can take it;
//! - forks the workload, which calls `setsid`, takes the terminal and makes
//!   itself the foreground process group, restores the original signal mask
//!   and default dispositions and `execvp`s the command (`PATH` lookup);
//! - forwards every signal except `SIGCHLD` to the workload's pid (not its
//!   process group);
//! - reaps every child; when the workload exits, exits with its status (the
//!   exit code, or 128+n when killed by signal n).
//!
//! In [`Mode::Restore`] (`--restore`) the init forks nothing: it waits for
//! `kata-cr-agent` to restore the workload with criu as its child, joins the
//! workload's mount namespace, gives back the capabilities (and `setns`)
//! lent for that, and supervises the workload as above (see the `restore`
//! module: notification by [`RESTORE_SIGNAL`], what is verified, what is
//! dropped). A failed restore ends it with 125.
//!
//! In [`Mode::Exec`] (`--exec`, a process exec'd into a restored container)
//! it sets the exec's capabilities and execs the command in place (see the
//! `exec` module).
//!
//! Nothing is printed in normal operation. Errors go to stderr prefixed with
//! `kata-cr-init:` and end the init with one of these exit codes:
//!
//! | code | meaning |
//! |------|---------|
//! | 120  | usage error (no `--`, no command, unknown option) |
//! | 121  | init setup failed (subreaper, signal mask, signalfd, terminal release) |
//! | 122  | `fork` failed |
//! | 123  | workload setup before exec failed (`setsid`, terminal, signal mask; exec mode: capabilities, seccomp filter) |
//! | 124  | waiting for or receiving signals for the workload failed |
//! | 125  | restore mode: the restore failed, or adopting the workload failed |
//! | 126  | exec failed: command not executable (permission denied, bad format...) |
//! | 127  | exec failed: command not found |
//!
//! A workload can exit with these codes too; the message on stderr tells
//! them apart.

mod caps;
mod cli;
mod error;
mod exec;
mod restore;
mod signals;
mod spawn;
mod supervise;
mod tty;

use std::io::Write as _;

pub use cli::{Command, Mode, RestoreOptions};
pub use error::Error;
pub use restore::RESTORE_SIGNAL;

/// Name used as prefix of every message.
const PROG: &str = "kata-cr-init";

/// Runs the init with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let result = cli::parse(std::env::args_os().skip(1)).and_then(|mode| match mode {
        Mode::Run(command) => run(&command),
        Mode::Restore(options) => restore(&options),
        Mode::Exec(options) => exec::exec(&options),
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    }
}

/// [`Mode::Run`]: fork `command` and supervise it until it exits.
fn run(command: &Command) -> Result<i32, Error> {
    if nix::unistd::getpid().as_raw() != 1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|errno| Error::Setup("set child subreaper", errno))?;
    }
    // Block signals before anything else: none may be lost or act on the
    // init between here and the fork; they queue on the signalfd.
    let signals = signals::Signals::block_all()?;
    let take_tty = tty::release_controlling_tty()?;
    let child = spawn::spawn(
        command,
        &spawn::ChildSetup {
            original_mask: signals.original_mask(),
            take_tty,
        },
    )?;
    supervise::supervise(child, &signals)
}

/// [`Mode::Restore`]: wait for the agent to restore the workload as our
/// child, adopt it (see [`restore`](restore::adopt)) and supervise it.
fn restore(options: &RestoreOptions) -> Result<i32, Error> {
    if nix::unistd::getpid().as_raw() != 1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|errno| Error::Setup("set child subreaper", errno))?;
    }
    let signals = signals::Signals::block_all()?;
    let workload = restore::adopt(&signals, options.keep_caps, options.deny_setns)?;
    supervise::supervise(workload, &signals)
}

/// Writes an error to stderr; a failing stderr is ignored (nothing better
/// to do, and it must not panic).
fn report(err: &Error) {
    let _ = writeln!(std::io::stderr(), "{PROG}: {err}");
}
