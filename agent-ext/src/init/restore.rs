//! [`Mode::Restore`](super::Mode::Restore): adopting a workload that
//! `kata-cr-agent` restored with criu.
//!
//! The agent runs criu from inside the container's pid namespace with
//! `--restore-detached`: when criu exits, the restored tree's root is
//! reparented to the namespace's init, this process. The agent then tells
//! the init with [`RESTORE_SIGNAL`] sent by `sigqueue(3)` from outside the
//! container, the value being the workload's pid in the container (or 0 when
//! the restore failed, and the init exits with code 125).
//!
//! A notification is believed only if it claims to come from outside the
//! pid namespace (`si_pid` 0) and names a child of the init that leads its
//! own session (checked with `waitid(WNOWAIT)`, which no other process can
//! fake). While the init waits, nothing in the container but an exec'd
//! process could send one, and it could only name an orphan it left behind.
//!
//! Once the workload is adopted the init joins its mount namespace (criu
//! restores the workload in a new one; joining it makes later execs, which
//! the runtime starts in the init's namespaces, see the workload's mounts).
//! That `setns` needs `CAP_SYS_ADMIN` and `CAP_SYS_CHROOT`, which the proxy
//! lends through the bundle's spec; right after it, the init optionally
//! forbids `setns` again with a seccomp filter (`--deny-setns`), then cuts
//! every capability set down to `--keep-caps`, and supervises the workload
//! exactly as in run mode. Every other signal received while waiting is
//! dropped, as the kernel drops signals sent to a pid namespace's init that
//! has no handler (SIGKILL still ends it).

use std::io::Write as _;
use std::os::fd::{FromRawFd as _, OwnedFd};

use libc::c_int;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::signals::{Info, Signals};
use super::{caps, Error, PROG};

/// The signal `kata-cr-agent` sends the init when a restore is over
/// (kernel number 63, `SIGRTMAX-1` in glibc's numbering).
pub const RESTORE_SIGNAL: c_int = 63;

/// `si_code` of a signal sent with `sigqueue`.
const SI_QUEUE: i32 = -1;

/// What a restore notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Not a restore notification, or one from inside the container.
    Ignore,
    /// The agent says the restore failed.
    Failed,
    /// The agent says the workload is this pid (to be verified).
    Restored(Pid),
}

/// Classifies a received signal.
pub fn notice(info: &Info) -> Notice {
    if info.signo != RESTORE_SIGNAL || info.code != SI_QUEUE || info.pid != 0 {
        return Notice::Ignore;
    }
    if info.value <= 0 {
        Notice::Failed
    } else {
        Notice::Restored(Pid::from_raw(info.value))
    }
}

/// Waits for the agent's notification; returns the restored workload, a
/// child of the init leading its own session.
pub fn wait_for_workload(signals: &Signals) -> Result<Pid, Error> {
    loop {
        let info = signals.next_info()?;
        match notice(&info) {
            Notice::Ignore => {
                if info.signo == RESTORE_SIGNAL {
                    warn(&format!(
                        "ignoring signal {RESTORE_SIGNAL} from pid {} (code {}): not a restore notification",
                        info.pid, info.code
                    ));
                }
            }
            Notice::Failed => {
                return Err(Error::Restore(
                    "kata-cr-agent reported that the restore failed".into(),
                ))
            }
            Notice::Restored(pid) => match check_adoptable(pid) {
                Ok(()) => return Ok(pid),
                Err(why) => warn(&format!(
                    "ignoring restore notification for pid {pid}: {why}"
                )),
            },
        }
    }
}

/// Whether `pid` is a child of the init (exited or not) that leads its
/// session.
fn check_adoptable(pid: Pid) -> Result<(), String> {
    // SAFETY: all-zero bytes are a valid siginfo_t; waitid writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // WNOWAIT: look without reaping; the workload is reaped by supervise.
    // SAFETY: plain syscall writing to `info`. Not nix's waitid: it fails
    // with EINVAL for a child killed by a real-time signal, which is still
    // our child.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid.as_raw() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(format!(
            "not a child of the init ({})",
            Errno::last().desc()
        ));
    }
    match nix::unistd::getsid(Some(pid)) {
        Ok(sid) if sid != pid => Err(format!("does not lead its session (session {sid})")),
        // Gone meanwhile (a zombie has no session to check): the waitid
        // above proved it is our child; supervise reaps it.
        _ => Ok(()),
    }
}

/// Makes the init share `workload`'s mount namespace.
pub fn join_mount_namespace(workload: Pid) -> Result<(), Error> {
    // A pidfd rather than /proc/<pid>/ns/mnt: no dependency on the
    // container's /proc, and the unreaped child cannot be replaced.
    // SAFETY: plain syscall; nix has no pidfd_open.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, workload.as_raw(), 0) };
    if raw < 0 {
        return Err(Error::Restore(format!(
            "pidfd_open of the workload {workload}: {}",
            Errno::last().desc()
        )));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as c_int) };
    nix::sched::setns(&pidfd, CloneFlags::CLONE_NEWNS).map_err(|errno| {
        Error::Restore(format!(
            "join the mount namespace of the workload {workload} (needs CAP_SYS_ADMIN and \
             CAP_SYS_CHROOT, and setns allowed by seccomp): {}",
            errno.desc()
        ))
    })
}

/// Adopts the restored workload: join its mount namespace, forbid `setns`
/// if asked, drop capabilities to `keep_caps`. Returns the workload.
pub fn adopt(signals: &Signals, keep_caps: u64, deny_setns: bool) -> Result<Pid, Error> {
    let workload = wait_for_workload(signals)?;
    join_mount_namespace(workload)?;
    if deny_setns {
        // Installed while CAP_SYS_ADMIN is still held: no need for
        // no_new_privs, which would change what the spec asked for.
        caps::deny_setns().map_err(|errno| {
            Error::Restore(format!(
                "install the seccomp filter denying setns: {}",
                errno.desc()
            ))
        })?;
    }
    caps::keep_only(keep_caps).map_err(|(what, errno)| {
        Error::Restore(format!("drop capabilities: {what}: {}", errno.desc()))
    })?;
    Ok(workload)
}

fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{PROG}: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(signo: c_int, code: i32, pid: i32, value: i32) -> Info {
        Info {
            signo,
            code,
            pid,
            value,
        }
    }

    #[test]
    fn only_a_queued_restore_signal_from_outside_counts() {
        assert_eq!(
            notice(&info(RESTORE_SIGNAL, SI_QUEUE, 0, 2)),
            Notice::Restored(Pid::from_raw(2))
        );
        assert_eq!(
            notice(&info(RESTORE_SIGNAL, SI_QUEUE, 0, 0)),
            Notice::Failed
        );
        assert_eq!(
            notice(&info(RESTORE_SIGNAL, SI_QUEUE, 0, -5)),
            Notice::Failed
        );
        // From a process of the container, by kill(2), another signal.
        assert_eq!(
            notice(&info(RESTORE_SIGNAL, SI_QUEUE, 7, 2)),
            Notice::Ignore
        );
        assert_eq!(notice(&info(RESTORE_SIGNAL, 0, 0, 2)), Notice::Ignore);
        assert_eq!(notice(&info(libc::SIGTERM, SI_QUEUE, 0, 2)), Notice::Ignore);
    }

    #[test]
    fn a_process_that_is_not_our_child_is_not_adoptable() {
        let err = check_adoptable(Pid::from_raw(1)).unwrap_err();
        assert!(err.contains("not a child"), "{err}");
    }
}
