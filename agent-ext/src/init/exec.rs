//! [`Mode::Exec`](super::cli::Mode::Exec): the first step of a process
//! exec'd into a restored container. A restored container's bundle spec
//! lends its init capabilities (and `setns` through its seccomp profile)
//! for the one moment it joins the restored workload's mount namespace.
//! Runtimes start exec'd processes from that spec: Kata's agent gives every
//! exec the container process's capability sets (its shim passes none of
//! the exec's own), and runc the container's seccomp profile. The proxy
//! therefore runs each exec of a restored container as
//! `kata-cr-init --exec --caps B:E:P:I:A [--deny-setns] -- <command>`: the
//! capability sets the exec asked for, cut to what the container's original
//! spec granted. This module sets exactly those (never more than the
//! process holds), forbids `setns` again if asked, and execs the command in
//! place (same pid, same stdio and terminal), as runc's exec would have.

use std::io::Write as _;

use nix::errno::Errno;
use nix::unistd::execvp;

use super::caps::{self, Full};
use super::cli::ExecOptions;
use super::spawn::exec_exit_code;
use super::{Error, PROG};

/// Sets the capabilities, installs the filter, execs. Returns only on
/// failure: the error, or the exit code of a failed exec (126/127).
pub fn exec(options: &ExecOptions) -> Result<i32, Error> {
    let fail = |what: &str, errno: Errno| Error::Exec(format!("{what}: {}", errno.desc()));
    if options.deny_setns {
        // The filter needs CAP_SYS_ADMIN or no_new_privs: with the lent
        // CAP_SYS_ADMIN still held (Kata) none is set; without it (runc
        // gives an exec the capabilities it asked for) no_new_privs is.
        let denied = match caps::deny_setns() {
            Err(Errno::EACCES) => {
                nix::sys::prctl::set_no_new_privs().map_err(|e| fail("set no_new_privs", e))?;
                caps::deny_setns()
            }
            other => other,
        };
        denied.map_err(|e| fail("install the seccomp filter denying setns", e))?;
    }
    caps::set_exactly(options.caps).map_err(|(what, errno)| fail(what, errno))?;
    let command = &options.command;
    let Err(errno) = execvp(command.program(), command.argv());
    let _ = writeln!(
        std::io::stderr(),
        "{PROG}: exec {}: {}",
        command.program().to_string_lossy(),
        errno.desc()
    );
    Ok(exec_exit_code(errno))
}

/// What the sets become: `want` cut to what the process holds (capset can
/// only lower, and ambient needs permitted and inheritable).
pub fn target(want: Full, now: caps::Sets) -> Full {
    let permitted = want.permitted & now.permitted;
    let inheritable = want.inheritable & now.inheritable;
    Full {
        bounding: want.bounding,
        effective: want.effective & permitted,
        permitted,
        inheritable,
        ambient: want.ambient & permitted & inheritable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_exceeds_what_is_held() {
        let want = Full {
            bounding: 0b1111,
            effective: 0b1111,
            permitted: 0b1111,
            inheritable: 0b0011,
            ambient: 0b0011,
        };
        let now = caps::Sets {
            effective: 0b0110,
            permitted: 0b0110,
            inheritable: 0b0001,
        };
        let t = target(want, now);
        assert_eq!(t.permitted, 0b0110);
        assert_eq!(t.effective, 0b0110);
        assert_eq!(t.inheritable, 0b0001);
        assert_eq!(t.ambient, 0);
        assert_eq!(t.bounding, 0b1111);
    }
}
