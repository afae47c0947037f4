//! `kata-cr-agent pidns-exec --pidns-fd N [--above P] -- PROG [ARG...]`: runs `PROG`
//! as a process of the pid namespace open on descriptor `N` (the daemon
//! starts criu restore this way; it is a fresh single-threaded process, as
//! `setns` into a pid namespace and `clone3` need).
//!
//! - `setns(N, CLONE_NEWPID)`: the helper's children are born in that
//!   namespace (the helper itself stays outside).
//! - The child gets the first free pid above `P` (`clone3` with `set_tid`,
//!   trying upwards from `P + 1`), `P` being the highest pid of the image
//!   set criu restores; without `--above`, or when the namespace's
//!   `pid_max` leaves no room there, the highest free pid (trying downwards
//!   from `pid_max - 1`). Either way the pids the restored tree needs again
//!   stay free, and the namespace's pid cursor is moved to the child's pid
//!   so that what criu forks is born after it: a dumped tree may hold any
//!   pid (a workload whose cursor was moved by an earlier dump holds pids
//!   right above the old criu's), and a helper of criu born on one of them
//!   fails the restore ("Can't fork for 32772: File exists").
//! - The child makes itself a private mount namespace with a `/proc` of the
//!   target pid namespace (criu reads its own and its children's pids
//!   there), then execs `PROG` (`PATH` lookup). It dies with the helper
//!   (`PR_SET_PDEATHSIG`), which dies with the daemon.
//! - The helper waits and exits with the child's status (128+n when killed
//!   by signal n); its own failures exit [`EXIT_SETUP`] after a message on
//!   stderr.
//!
//! Descriptors without close-on-exec (the namespace, criu's inherit-fds)
//! pass through to `PROG`.

use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{execvp, getpid, getppid, Pid};

/// Exit code when the helper itself fails.
pub const EXIT_SETUP: i32 = 125;

/// How many pids below `pid_max` are tried.
const PID_TRIES: i32 = 1000;

/// `struct clone_args` up to `set_tid_size` (`CLONE_ARGS_SIZE_VER1`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
}

/// Forks with pid `pid` in the namespace children are born in. Returns 0
/// in the child, the child's pid (as the helper sees it) in the parent.
fn fork_with_pid(pid: i32) -> Result<i32, Errno> {
    let tid: libc::pid_t = pid;
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: &tid as *const libc::pid_t as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: a fork-like clone3 (no CLONE_VM, no stack): the child gets a
    // copy of this single-threaded process and returns here with 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(rc).map(|r| r as i32)
}

/// The pids to try for the child: upwards from `above + 1` when asked,
/// then downwards from `pid_max - 1`.
pub fn candidate_pids(pid_max: i32, above: Option<i32>) -> impl Iterator<Item = i32> {
    let top = pid_max.saturating_sub(1).max(2);
    let up = above
        .map(|p| p.max(1).saturating_add(1))
        .map(|low| low..low.saturating_add(PID_TRIES))
        .unwrap_or(0..0);
    up.chain((top.saturating_sub(PID_TRIES).max(2)..=top).rev())
}

/// Runs the helper; returns its exit code.
pub fn main(pidns_fd: i32, above: Option<i32>, argv: &[String]) -> i32 {
    match run(pidns_fd, above, argv) {
        Ok(code) => code,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "kata-cr-agent pidns-exec: {msg}");
            EXIT_SETUP
        }
    }
}

fn run(pidns_fd: i32, above: Option<i32>, argv: &[String]) -> Result<i32, String> {
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("NUL byte in {a:?}")))
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err("no program".into());
    }
    // Read before joining: the namespace's pid_max starts as its parent's.
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    // SAFETY: the daemon passed this descriptor open (without close-on-exec)
    // for this helper's whole life.
    let pidns = unsafe { BorrowedFd::borrow_raw(pidns_fd) };
    setns(pidns, CloneFlags::CLONE_NEWPID).map_err(|e| {
        format!(
            "setns into the pid namespace on fd {pidns_fd}: {}",
            e.desc()
        )
    })?;
    let helper = getpid();
    let mut child = None;
    let mut last = Errno::EEXIST;
    for pid in candidate_pids(pid_max, above) {
        match fork_with_pid(pid) {
            Ok(0) => exec_child(helper, &argv),
            Ok(host_pid) => {
                child = Some(Pid::from_raw(host_pid));
                break;
            }
            // Taken, or above the namespace's own pid_max: try the next.
            Err(e @ (Errno::EEXIST | Errno::EINVAL)) => last = e,
            Err(e) => return Err(format!("clone3 with pid {pid}: {}", e.desc())),
        }
    }
    let Some(child) = child else {
        return Err(format!(
            "no free pid above {} nor among the {PID_TRIES} below {pid_max}: {}",
            above.map_or("-".to_string(), |p| p.to_string()),
            last.desc()
        ));
    };
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for {child}: {}", e.desc())),
        }
    }
}

/// Decimal digits of `pid` into `buf` without allocating; returns the
/// length.
fn fmt_pid(pid: libc::pid_t, buf: &mut [u8; 16]) -> usize {
    let mut digits = [0u8; 16];
    let (mut v, mut n) = (pid.max(0) as u32, 0);
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    n
}

/// In the child: die with the helper, own mount namespace with the pid
/// namespace's /proc, exec. The helper is single-threaded, so the child
/// may allocate.
fn exec_child(helper: Pid, argv: &[CString]) -> ! {
    let fail = |what: &str, e: Errno| -> ! {
        let _ = writeln!(
            std::io::stderr(),
            "kata-cr-agent pidns-exec: {what}: {}",
            e.desc()
        );
        // SAFETY: ends the forked child without running the parent's exit
        // handlers or flushing buffers it shares with the parent.
        unsafe { libc::_exit(EXIT_SETUP) }
    };
    // criu must not outlive the helper (which dies with the daemon).
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail("set the parent-death signal", e);
    }
    // The helper is outside the pid namespace this child was born in,
    // where it shows as parent 0; had it died already, the child would
    // have been reparented to the namespace's init.
    let parent = getppid();
    if parent != helper && parent.as_raw() != 0 {
        fail("the helper exited", Errno::ESRCH);
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
        fail("unshare the mount namespace", e);
    }
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        fail("make mounts private", e);
    }
    if let Err(e) = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        fail("mount /proc of the pid namespace", e);
    }
    // set_tid placed this process, but it does not move the namespace's
    // pid cursor: criu's own helpers would be born wherever it was and
    // could take a pid the restored tree needs ("Can't fork for 7: File
    // exists"). Move the cursor here.
    let mut buf = [0u8; 16];
    let n = fmt_pid(getpid().as_raw(), &mut buf);
    let written = nix::fcntl::open(
        "/proc/sys/kernel/ns_last_pid",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .and_then(|fd| nix::unistd::write(&fd, &buf[..n]));
    match written {
        Ok(w) if w == n => {}
        Ok(_) => fail("set ns_last_pid of the pid namespace", Errno::EIO),
        Err(e) => fail("set ns_last_pid of the pid namespace", e),
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

    #[test]
    fn pids_format_without_allocating() {
        let mut b = [0u8; 16];
        let n = fmt_pid(4_194_303, &mut b);
        assert_eq!(&b[..n], b"4194303");
        let n = fmt_pid(7, &mut b);
        assert_eq!(&b[..n], b"7");
    }

    #[test]
    fn candidates_go_down_from_pid_max() {
        let c: Vec<i32> = candidate_pids(4_194_304, None).take(3).collect();
        assert_eq!(c, [4_194_303, 4_194_302, 4_194_301]);
        assert_eq!(candidate_pids(32768, None).count(), PID_TRIES as usize + 1);
        // A tiny pid_max never offers pid 1 or below.
        assert_eq!(candidate_pids(5, None).collect::<Vec<_>>(), [4, 3, 2]);
    }

    #[test]
    fn candidates_start_above_the_image_sets_pids() {
        // The image holds 32772, past the old criu at 32767: criu and its
        // helpers go above it, then (pid_max reached) down from the top.
        let c: Vec<i32> = candidate_pids(32768, Some(32772)).collect();
        assert_eq!(&c[..2], [32773, 32774]);
        assert_eq!(c[PID_TRIES as usize], 32767);
        assert!(c.iter().all(|&p| p != 32772 && p > 1));
        assert_eq!(candidate_pids(32768, Some(0)).next(), Some(2));
    }
}
