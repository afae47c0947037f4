//! Signal handling: every signal is blocked in the init and read from a
//! signalfd; the workload gets the original mask and default dispositions
//! back before exec.
//!
//! Masks go to the kernel directly, as 64-bit kernel sigsets (every Linux
//! architecture kata runs on has 64 signals): libc's sigset helpers leave
//! out the signals it reserves for itself (32 and 33 in glibc), and those
//! would then kill the init instead of being forwarded.

use std::io::Write as _;
use std::mem;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::ptr;

use libc::{c_int, c_long};
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use super::{Error, PROG};

/// A kernel signal mask: bit n-1 stands for signal n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask(u64);

impl Mask {
    /// Every signal (the kernel leaves SIGKILL and SIGSTOP out).
    const ALL: Mask = Mask(!0);
    /// Number of signals, the highest signal number.
    const SIGNALS: c_int = 64;
    /// Size the kernel expects for its sigset arguments.
    const SIZE: usize = mem::size_of::<u64>();

    /// Applies `how` (SIG_BLOCK, SIG_SETMASK...) and returns the previous
    /// mask.
    fn apply(self, how: c_int) -> Result<Mask, Errno> {
        let mut previous = Mask(0);
        // SAFETY: the kernel reads and writes `SIZE` bytes at valid pointers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                how as c_long,
                &self.0 as *const u64,
                &mut previous.0 as *mut u64,
                Self::SIZE,
            )
        };
        Errno::result(rc).map(|_| previous)
    }
}

/// One received signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Signal number.
    pub signo: c_int,
    /// `si_code` (`SI_QUEUE` for `sigqueue`, `SI_USER` for `kill`...).
    pub code: i32,
    /// `si_pid` in the init's pid namespace: 0 when the sender is outside
    /// it (but a `sigqueue` caller may fill it in: not proof of origin).
    pub pid: i32,
    /// The integer sent with `sigqueue`.
    pub value: i32,
}

/// The init's signal state: all signals blocked, pending ones readable from
/// `fd`.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    original_mask: Mask,
}

impl Signals {
    /// Blocks every signal (SIGKILL and SIGSTOP cannot be) and opens a
    /// close-on-exec signalfd for all of them.
    ///
    /// A signal caused by a fault of the init itself (SIGSEGV...) is still
    /// fatal: the kernel unblocks and defaults it.
    pub fn block_all() -> Result<Self, Error> {
        let original_mask = Mask::ALL
            .apply(libc::SIG_BLOCK)
            .map_err(|errno| Error::Setup("block signals", errno))?;
        // SAFETY: the kernel reads `SIZE` bytes; the fd is owned below. The
        // raw syscall because nix's SignalFd takes a libc sigset, which
        // cannot hold the signals glibc reserves (32, 33).
        let raw = unsafe {
            libc::syscall(
                libc::SYS_signalfd4,
                -1 as c_long,
                &Mask::ALL.0 as *const u64,
                Mask::SIZE,
                libc::SFD_CLOEXEC as c_long,
            )
        };
        if raw < 0 {
            return Err(Error::Setup("create signalfd", Errno::last()));
        }
        // SAFETY: `raw` is a fresh signalfd nobody else owns; fds fit in
        // c_int.
        let fd = unsafe { SignalFd::from_owned_fd(OwnedFd::from_raw_fd(raw as c_int)) };
        Ok(Signals { fd, original_mask })
    }

    /// The mask the init started with, for the workload.
    pub fn original_mask(&self) -> Mask {
        self.original_mask
    }

    /// Waits for the next signal and returns its number.
    pub fn next(&self) -> Result<c_int, Error> {
        self.next_info().map(|info| info.signo)
    }

    /// Waits for the next signal and returns what the signalfd says of it.
    pub fn next_info(&self) -> Result<Info, Error> {
        loop {
            let info = match self.fd.read_signal() {
                Ok(Some(info)) => info,
                Err(Errno::EINTR) => continue,
                // A blocking signalfd never answers "nothing yet".
                Ok(None) => return Err(Error::Supervise("read signalfd", Errno::EAGAIN)),
                Err(errno) => return Err(Error::Supervise("read signalfd", errno)),
            };
            // Signal numbers are small positive ints; the other fields are
            // the kernel's ints stored unsigned.
            return Ok(Info {
                signo: info.ssi_signo as c_int,
                code: info.ssi_code,
                pid: info.ssi_pid as i32,
                value: info.ssi_int,
            });
        }
    }
}

/// Sends `sig` to `pid` (the process, not its group). A workload that is
/// already gone (ESRCH) is not an error; other failures are reported and
/// the init carries on.
pub fn forward(pid: Pid, sig: c_int) {
    // SAFETY: plain syscall. Not nix's kill: its Signal cannot name the
    // real-time signals, which are forwarded too.
    if unsafe { libc::kill(pid.as_raw(), sig) } == 0 {
        return;
    }
    let errno = Errno::last();
    if errno != Errno::ESRCH {
        let _ = writeln!(
            std::io::stderr(),
            "{PROG}: forward signal {sig} to {pid}: {}",
            errno.desc()
        );
    }
}

/// Discards pending instances of `sig` (setting a signal to "ignore" drops
/// what is pending, even while blocked) and restores its disposition.
pub fn discard_pending(sig: Signal) -> Result<(), Errno> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler; the previous disposition is put
    // back as it was.
    unsafe {
        let previous = sigaction(sig, &ignore)?;
        sigaction(sig, &previous)?;
    }
    Ok(())
}

/// In the forked workload, before exec: every signal back to its default
/// disposition (the Rust runtime ignores SIGPIPE, the runtime may have
/// started the init with some ignored, and ignored dispositions survive
/// exec), then the init's original mask.
pub fn reset_for_exec(original_mask: Mask) -> Result<(), Errno> {
    // The raw syscall, because libc refuses the real-time signals it
    // reserves for itself (32 and 33 in glibc), which can be inherited as
    // ignored too. An all-zero kernel sigaction is SIG_DFL with no flags
    // and an empty mask whatever the architecture's field order; four
    // words cover handler, flags, restorer and a 64-signal mask.
    let default = [0u64; 4];
    for sig in 1..=Mask::SIGNALS {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the kernel reads a zeroed struct; no old action requested.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as c_long,
                default.as_ptr(),
                ptr::null_mut::<u64>(),
                Mask::SIZE,
            )
        };
    }
    original_mask.apply(libc::SIG_SETMASK).map(|_| ())
}
