//! The floor under what the proxy can cost: one round trip over a unix
//! socket between two processes, measured on this machine in the same run
//! as the RPCs. A proxy adds exactly one such hop (the caller -> proxy ->
//! inner shim and back, instead of caller -> inner shim and back), so it
//! cannot add less than this; what it adds beyond it is its own work.
//!
//! The partner is this binary run as `kata-cr-bench echo CPU` with its end
//! of a socketpair as stdin: it writes back whatever it reads, with blocking
//! calls, as the cheapest possible peer. Where the two processes run decides
//! the cost here: waking a process on the other core costs about five times
//! a wakeup on the same core. The measuring process pins itself to CPU 0
//! (see `latency`), and there is one partner on each side: CPU 1 gives the
//! round trip across cores (the floor the report judges the proxy against:
//! the proxy is a third process beside a busy caller and a busy inner shim),
//! CPU 0 the same-core one (shown beside it).

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// About the size of a Task RPC frame (a State request is ~60 bytes, its
/// response ~150).
const MESSAGE: usize = 128;

pub struct Floor {
    sock: UnixStream,
    child: Child,
}

impl Floor {
    /// Starts the echo partner (this executable, `echo`) pinned to `cpu`.
    pub fn start(cpu: usize) -> std::io::Result<Floor> {
        let exe = std::env::current_exe()?;
        let (ours, theirs) = UnixStream::pair()?;
        let child = Command::new(exe)
            .arg("echo")
            .arg(cpu.to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .spawn()?;
        let mut f = Floor { sock: ours, child };
        // The partner is up once it has answered.
        f.round_trip()?;
        Ok(f)
    }

    /// One message there and back.
    pub fn round_trip(&mut self) -> std::io::Result<Duration> {
        let out = [0x5au8; MESSAGE];
        let mut back = [0u8; MESSAGE];
        let t = Instant::now();
        self.sock.write_all(&out)?;
        self.sock.read_exact(&mut back)?;
        Ok(t.elapsed())
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// Pins the calling thread (and what it forks later) to `cpu`.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
    // for cpu < CPU_SETSIZE, checked first.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The partner: pinned to the CPU its argument names, echoes stdin (a unix
/// socket) back into it until EOF.
pub fn echo(args: &[String]) -> std::io::Result<()> {
    let cpu: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: kata-cr-bench echo CPU"))?;
    pin_to(cpu)?;
    // SAFETY: fd 0 is the socketpair end Floor::start passed as stdin, owned
    // by nothing else in this process.
    let mut s = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}
