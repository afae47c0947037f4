//! Running the criu CLI: version, check, dump; building its arguments and
//! turning its log into error messages.
//!
//! criu runs as a direct child of the daemon and is waited for by pid (the
//! daemon installs no reaper that could take its status). criu dumps only
//! namespaces that differ from its own: a dump runs in the container's pid
//! namespace (no pid namespace image) and dumps its uts and ipc namespaces,
//! as runc's dumps do; a restore joins the container's uts and ipc
//! namespaces, before it execs criu and again through `--join-ns`.
//!
//! criu never outlives the daemon: the child asks for `SIGKILL` when the
//! daemon dies (`PR_SET_PDEATHSIG`; the daemon's runtime threads, which
//! fork it, live as long as the daemon). It leads a process group of its
//! own, so that a time limit kills it with every helper it started (criu
//! runs `tar` for tmpfs contents).
//!
//! No `--ext-mount-map auto`, at dump or at restore: with it criu marks
//! every mount it cannot place as external at dump, and at restore binds
//! whatever source an image names from its own mount namespace (the
//! host's, or the whole guest's). External mounts carry only the keys
//! kata-cr gives at dump (see [`DumpArgs::args`]), and a restore maps only
//! those, to the new container's own sources; [`super::restore_checks`]
//! refuses anything else before criu runs.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::AsyncReadExt as _;

use super::error::{Error, Result};

/// Lines of criu's log quoted in an error.
pub const LOG_TAIL_LINES: usize = 20;

/// Key of the external pid namespace in images (restore: `--inherit-fd
/// fd[N]:extpid`).
pub const EXT_PID_KEY: &str = "extpid";
/// Key of the external network namespace in images.
pub const EXT_NET_KEY: &str = "extnet";
/// Key of the external root mount in images (restore: `--ext-mount-map
/// rootfs:<new root>`).
pub const EXT_ROOT_KEY: &str = "rootfs";

/// The criu executable.
#[derive(Debug, Clone)]
pub struct Criu {
    path: PathBuf,
}

/// What `criu dump` is asked to do (see [`DumpArgs::args`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpArgs {
    /// Root of the dumped tree (the workload), in the daemon's pid namespace.
    pub pid: i32,
    /// `--images-dir`.
    pub images_dir: PathBuf,
    /// `--work-dir` (stats, and anything else criu writes besides images).
    pub work_dir: PathBuf,
    /// `--log-file` (absolute).
    pub log_file: PathBuf,
    /// Inode of the container's pid namespace: dumped as external.
    pub external_pidns: Option<u64>,
    /// Inode of the container's network namespace when it is not the
    /// daemon's own: dumped as external.
    pub external_netns: Option<u64>,
    /// The already frozen cgroup whose tasks criu seizes (`--freeze-cgroup`);
    /// `None`: criu freezes the tree itself with ptrace.
    pub freeze_cgroup: Option<PathBuf>,
    /// `--leave-running`.
    pub leave_running: bool,
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--file-locks`.
    pub file_locks: bool,
    /// `--ext-unix-sk`.
    pub ext_unix_sk: bool,
    /// Destinations of the runtime's bind mounts: external, keyed by
    /// destination, so a restore can map them to its own sources.
    pub bind_mounts: Vec<PathBuf>,
}

impl DumpArgs {
    /// The argument vector after `criu`.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("dump");
        push("--tree");
        push(&self.pid.to_string());
        push("--images-dir");
        push(&self.images_dir.to_string_lossy());
        push("--work-dir");
        push(&self.work_dir.to_string_lossy());
        push("--log-file");
        push(&self.log_file.to_string_lossy());
        push("-v4");
        if let Some(ino) = self.external_pidns {
            push("--external");
            push(&format!("pid[{ino}]:{EXT_PID_KEY}"));
        }
        if let Some(ino) = self.external_netns {
            push("--external");
            push(&format!("net[{ino}]:{EXT_NET_KEY}"));
        }
        // The container's root is the runtime's mount, recreated by the
        // runtime of the restoring container (criu restores it from
        // --root; its dump skips the root when it resolves external
        // mounts, so the image's root entry carries no key, and its type
        // is whatever criu makes of the rootfs: "unsupported" for a Kata
        // guest's virtiofs). The runtime's bind mounts (hosts, resolv.conf, /dev/shm
        // of a pod, /dev/.kata-cr-init...) and the container's cgroup
        // mounts are external, keyed by their mount point: a restore maps
        // each key to the new container's source for that mount point.
        // Everything else is inside the container and dumped as such.
        push("--external");
        push(&format!("mnt[/]:{EXT_ROOT_KEY}"));
        for dest in &self.bind_mounts {
            let d = dest.to_string_lossy();
            push("--external");
            push(&format!("mnt[{d}]:{d}"));
        }
        push("--enable-external-masters");
        push("--link-remap");
        // The restoring container has its own cgroups already: keep criu's
        // hands off (cgroup.img still records the layout).
        push("--manage-cgroups=ignore");
        if let Some(dir) = &self.freeze_cgroup {
            push("--freeze-cgroup");
            push(&dir.to_string_lossy());
        }
        if self.leave_running {
            push("--leave-running");
        }
        if self.tcp_established {
            push("--tcp-established");
            // criu locks each connection it dumps from a network namespace
            // it does not dump (a Kata guest's, shared by its containers).
            // Its default way runs `iptables-restore` through `sh`, which a
            // Kata guest does not have (criu: "exited, status=127", "Failed
            // to lock TCP connection"); nftables goes through libnftables,
            // linked into criu, and the kernel's nf_tables, which criu's
            // own probes need anyway. A restore takes the method from the
            // image's inventory.
            push("--network-lock");
            push("nftables");
        }
        if self.file_locks {
            push("--file-locks");
        }
        if self.ext_unix_sk {
            push("--ext-unix-sk");
        }
        a
    }
}

/// What `criu restore` is asked to do (see [`RestoreArgs::args`]): the
/// counterpart of [`DumpArgs`], run from inside the container's pid
/// namespace (see [`ChildSetup::pidns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreArgs {
    /// `--images-dir`.
    pub images_dir: PathBuf,
    /// `--work-dir`.
    pub work_dir: PathBuf,
    /// `--log-file` (absolute).
    pub log_file: PathBuf,
    /// `--pidfile`: criu writes the restored root's pid, in criu's (the
    /// container's) pid namespace.
    pub pidfile: PathBuf,
    /// `--root`: the container's rootfs as the daemon sees it.
    pub root: PathBuf,
    /// Descriptor criu inherits open on the container's pid namespace.
    pub pidns_fd: i32,
    /// Descriptor criu inherits open on the container's network namespace,
    /// when it was external at dump.
    pub netns_fd: Option<i32>,
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--tcp-close`.
    pub tcp_close: bool,
    /// `--file-locks`.
    pub file_locks: bool,
    /// `--ext-unix-sk`.
    pub ext_unix_sk: bool,
    /// The restoring container's bind mounts: each destination (the dump's
    /// key) mapped to this container's source.
    pub bind_mounts: Vec<(PathBuf, PathBuf)>,
    /// Descriptors criu inherits in place of the dumped stdio pipes:
    /// `(fd, key)`, the key as recorded at dump (`pipe:[ino]`).
    pub inherit_fds: Vec<(i32, String)>,
    /// `--join-ns KIND:/proc/self/fd/N`: the container's namespaces (uts,
    /// ipc) the restored tree joins, open on descriptor N. criu makes the
    /// tree's root in new ones when the dump had them (runc's dumps do),
    /// then joins these and writes the dumped values into them, as it does
    /// for runc in a pod: the workload stays in the container's namespaces.
    pub join_ns: Vec<(&'static str, i32)>,
}

impl RestoreArgs {
    /// The argument vector after `criu`.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("restore");
        push("--images-dir");
        push(&self.images_dir.to_string_lossy());
        push("--work-dir");
        push(&self.work_dir.to_string_lossy());
        push("--log-file");
        push(&self.log_file.to_string_lossy());
        push("-v4");
        // criu exits once the tree runs; the tree's root is then reparented
        // to the init of criu's pid namespace: the container's init.
        push("--restore-detached");
        push("--pidfile");
        push(&self.pidfile.to_string_lossy());
        push("--root");
        push(&self.root.to_string_lossy());
        push("--inherit-fd");
        push(&format!("fd[{}]:{EXT_PID_KEY}", self.pidns_fd));
        if let Some(fd) = self.netns_fd {
            push("--inherit-fd");
            push(&format!("fd[{fd}]:{EXT_NET_KEY}"));
        }
        for (fd, key) in &self.inherit_fds {
            push("--inherit-fd");
            push(&format!("fd[{fd}]:{key}"));
        }
        for (kind, fd) in &self.join_ns {
            push("--join-ns");
            push(&format!("{kind}:/proc/self/fd/{fd}"));
        }
        push("--ext-mount-map");
        push(&format!("{EXT_ROOT_KEY}:{}", self.root.to_string_lossy()));
        for (dest, source) in &self.bind_mounts {
            push("--ext-mount-map");
            push(&format!(
                "{}:{}",
                dest.to_string_lossy(),
                source.to_string_lossy()
            ));
        }
        // The container's runtime made its cgroups; criu's helper joined
        // them before criu started, and the tree stays there.
        push("--manage-cgroups=ignore");
        if self.tcp_established {
            push("--tcp-established");
        }
        if self.tcp_close {
            push("--tcp-close");
        }
        if self.file_locks {
            push("--file-locks");
        }
        if self.ext_unix_sk {
            push("--ext-unix-sk");
        }
        a
    }
}

/// How criu ended, with what it printed.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// stdout.
    pub stdout: String,
    /// stderr (usage errors go here, not to the log).
    pub stderr: String,
    /// Set when criu outlived [`ChildSetup::limit`] and was killed.
    pub timed_out: Option<std::time::Duration>,
}

/// Extracts the version from `criu --version` ("Version: 4.2.1").
pub fn parse_version(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Error lines criu logs but goes on after (not the cause of a failure).
const BENIGN_ERRORS: &[&str] = &[
    // criu tries to raise its own fd limit and carries on when it may not.
    "rlimit: Can't setup RLIMIT_NOFILE",
];

/// The first error line of a criu log that is not one criu ignores itself.
pub fn first_error(log: &str) -> Option<&str> {
    log.lines()
        .map(str::trim)
        .filter(|l| l.contains("Error (") || l.starts_with("Error"))
        .find(|l| !BENIGN_ERRORS.iter().any(|b| l.contains(b)))
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What an error message quotes of a criu log: its first error line,
/// wherever it is, and its last lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriuLog {
    /// The first error line (see [`first_error`]) of the whole log (up to
    /// [`LOG_SCAN_MAX`] bytes), at most [`ERROR_LINE_MAX`] bytes of it.
    pub first_error: Option<String>,
    /// The end of the log (at most [`LOG_READ_MAX`] bytes, whole lines).
    pub tail: String,
}

/// How much of a criu log is scanned for its first error line: a failed
/// restore at `-v4` can go on logging for megabytes after its first error
/// (the other tasks of the tree carry on until criu stops them), so the
/// tail alone may hold none.
pub const LOG_SCAN_MAX: u64 = 64 * 1024 * 1024;
/// How much of one error line is quoted.
pub const ERROR_LINE_MAX: usize = 1024;

impl CriuLog {
    /// From a log held in memory (tests, and logs read whole).
    pub fn from_text(text: &str) -> Self {
        CriuLog {
            first_error: first_error(text).map(|l| clip(l, ERROR_LINE_MAX)),
            tail: text.to_string(),
        }
    }

    /// Reads the log at `path`: its first error line, scanned line by line
    /// without holding the log, and its tail. Empty when it cannot be read.
    pub fn read(path: &Path) -> Self {
        CriuLog {
            first_error: File::open(path).ok().and_then(first_error_in),
            tail: read_log_tail(path),
        }
    }
}

/// The first error line of a log read from `r` (at most [`LOG_SCAN_MAX`]
/// bytes). Lines are read one at a time, each kept to a bounded prefix: an
/// endless line cannot take the daemon's memory.
pub fn first_error_in(r: impl std::io::Read) -> Option<String> {
    use std::io::BufRead as _;
    let mut r = std::io::BufReader::new(r.take(LOG_SCAN_MAX));
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut ended = false;
        loop {
            let buf = r.fill_buf().ok()?;
            if buf.is_empty() {
                break;
            }
            let (chunk, used) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    ended = true;
                    (&buf[..i], i + 1)
                }
                None => (buf, buf.len()),
            };
            let room = (4 * ERROR_LINE_MAX).saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            r.consume(used);
            if ended {
                break;
            }
        }
        if let Some(e) = first_error(&String::from_utf8_lossy(&line)) {
            return Some(clip(e, ERROR_LINE_MAX));
        }
        if !ended {
            return None;
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The message of a failed criu run: criu's first error line (from the
/// whole log), the last lines of its log (or its stderr when the log is
/// empty) and where the full log is kept.
pub fn failure_message(what: &str, outcome: &Outcome, log: &CriuLog, log_path: &Path) -> String {
    let first = log
        .first_error
        .as_deref()
        .or_else(|| first_error(&outcome.stderr))
        .or_else(|| outcome.stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("criu logged no error line");
    let mut msg = match outcome.timed_out {
        Some(limit) => format!(
            "{what} did not finish within {}s and was killed ({}){}",
            // Whole seconds, rounded up: a limit of what was left of 5 s
            // reads as 5 s.
            limit.as_secs() + u64::from(limit.subsec_nanos() > 0),
            outcome.status,
            log.first_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        None => format!("{what} failed ({}): {first}", outcome.status),
    };
    let (body, source) = if log.tail.trim().is_empty() {
        (outcome.stderr.as_str(), "stderr".to_string())
    } else {
        (log.tail.as_str(), format!("log {}", log_path.display()))
    };
    if !body.trim().is_empty() {
        msg.push_str(&format!(
            "\n--- last {LOG_TAIL_LINES} lines of criu's {source} ---\n"
        ));
        msg.push_str(&tail(body, LOG_TAIL_LINES));
    }
    msg.push_str(&format!("\n--- full log: {} ---", log_path.display()));
    msg
}

/// At most this much of the end of a criu log is read for an error message:
/// a criu stuck in a loop can write gigabytes of log.
pub const LOG_READ_MAX: u64 = 256 * 1024;

/// The end of the log at `path` (at most [`LOG_READ_MAX`] bytes, from the
/// start of a line); empty when it cannot be read.
pub fn read_log_tail(path: &Path) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_READ_MAX);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    match (start, text.find('\n')) {
        (s, Some(nl)) if s > 0 => text[nl + 1..].to_string(),
        _ => text,
    }
}

/// Everything `pipe` gives until EOF (nothing for no pipe).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf).await;
    }
    buf
}

/// What to do about a criu that outlives [`ChildSetup::limit`], once the
/// process the daemon started is killed: kill what criu started (processes
/// the daemon cannot see as children).
pub type OnLimit<'a> = Box<dyn FnOnce() + Send + 'a>;

/// In the forked child, before exec (see [`Criu::run`]): die with the
/// daemon, lead a process group, cap file sizes, join cgroups and
/// namespaces, keep the inherited descriptors across exec.
fn child_setup(
    daemon: Pid,
    cgroup_procs: &[std::ffi::CString],
    ns_fds: &[i32],
    keep: &[i32],
    max_file_size: Option<u64>,
) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The daemon may have died between fork and prctl: then no signal
    // will come, and criu must not start.
    if nix::unistd::getppid() != daemon {
        return Err(std::io::Error::other("kata-cr-agent exited"));
    }
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    if let Some(max) = max_file_size {
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, max, max)?;
    }
    for path in cgroup_procs {
        let fd = nix::fcntl::open(
            path.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        if nix::unistd::write(&fd, b"0")? != 1 {
            return Err(std::io::Error::other("short write to cgroup.procs"));
        }
    }
    for &fd in ns_fds {
        // SAFETY: the parent keeps this descriptor open until exec.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::sched::setns(fd, nix::sched::CloneFlags::empty())?;
    }
    for &fd in keep {
        // SAFETY: the parent keeps this descriptor open until exec.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let flags = FdFlag::from_bits_truncate(nix::fcntl::fcntl(fd, FcntlArg::F_GETFD)?);
        nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC))?;
    }
    Ok(())
}

/// Namespaces and cgroups the criu child joins before exec, and
/// descriptors it inherits under the same numbers.
#[derive(Default)]
pub struct ChildSetup<'a> {
    /// Namespace files (`/proc/<pid>/ns/uts`...) to `setns` into.
    pub join: Vec<File>,
    /// Descriptors to keep open across exec (images directory, namespaces).
    pub keep_fds: Vec<BorrowedFd<'a>>,
    /// `cgroup.procs` files to write `0` to (join those cgroups).
    pub cgroup_procs: Vec<PathBuf>,
    /// Run criu as a process of this pid namespace: through the daemon's own
    /// executable (`kata-cr-agent pidns-exec`, see [`super::pidns`]), which
    /// joins it and starts criu there with a high pid and its own `/proc`.
    pub pidns: Option<BorrowedFd<'a>>,
    /// With [`Self::pidns`]: criu's pid there goes above this one (the
    /// highest pid of the image set it restores), and so does everything
    /// it forks.
    pub pid_floor: Option<u32>,
    /// How long criu may run: past it the started process is killed, then
    /// [`Self::on_limit`] runs, and the outcome says
    /// [`Outcome::timed_out`]. `None`: no limit.
    pub limit: Option<std::time::Duration>,
    /// Kills whatever else the started process left (see [`OnLimit`]);
    /// everything holding criu's stdout/stderr must be gone after it, or
    /// [`Criu::run`] waits for it. criu's own process group is killed
    /// before it runs.
    pub on_limit: Option<OnLimit<'a>>,
    /// `RLIMIT_FSIZE` of the child: no file criu writes grows past it
    /// (criu gets `SIGXFSZ`).
    pub max_file_size: Option<u64>,
    /// Run criu under the daemon's guard ([`super::guard`]), which does
    /// this if the daemon dies before criu ends.
    pub guard: Option<super::guard::OnLoss>,
}

impl Criu {
    /// criu at `path` (a bare name is looked up in `PATH`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Criu { path: path.into() }
    }

    /// The executable as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The program and arguments that run criu with `args` under `setup`.
    pub fn command_line(&self, args: &[OsString], setup: &ChildSetup<'_>) -> Result<Vec<OsString>> {
        let mut argv: Vec<OsString> = Vec::new();
        let helper =
            || std::env::current_exe().map_err(|e| Error::io("finding the daemon's executable", e));
        if let Some(on_loss) = &setup.guard {
            argv.push(helper()?.into());
            argv.push("criu-guard".into());
            argv.push("--on-loss".into());
            argv.push(on_loss.file.clone().into());
            argv.push(on_loss.value.clone().into());
            argv.push("--".into());
        }
        if let Some(fd) = setup.pidns {
            argv.push(helper()?.into());
            argv.push("pidns-exec".into());
            argv.push("--pidns-fd".into());
            argv.push(fd.as_raw_fd().to_string().into());
            if let Some(floor) = setup.pid_floor {
                argv.push("--above".into());
                argv.push(floor.to_string().into());
            }
            argv.push("--".into());
        }
        argv.push(self.path.clone().into());
        argv.extend(args.iter().cloned());
        Ok(argv)
    }

    /// The executable criu is run as: the configured path, or the first
    /// executable of that name in `search` (a `PATH` value) for a bare name.
    /// Checked before spawning, because the daemon's helpers
    /// (`criu-guard`, `pidns-exec`) exec criu only after the spawn, where
    /// a missing criu would read as the helper's own failure.
    pub fn resolve(&self, search: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
        let is_exe = |p: &Path| -> std::result::Result<(), String> {
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err("no such file".to_string())
                }
                Err(e) => Err(e.to_string()),
                Ok(m) if !m.is_file() => Err("not a regular file".to_string()),
                Ok(_) => nix::unistd::access(p, nix::unistd::AccessFlags::X_OK)
                    .map_err(|e| format!("not executable ({})", e.desc())),
            }
        };
        // execvp's rule: a name with a slash is a path, without one it is
        // looked up in PATH.
        let bare = !self.path.as_os_str().as_encoded_bytes().contains(&b'/');
        if !bare || self.path.as_os_str().is_empty() {
            return is_exe(&self.path)
                .map(|()| self.path.clone())
                .map_err(|why| {
                    Error::FailedPrecondition(format!(
                        "criu not found: {}: {why} (kata-cr-agent --criu)",
                        self.path.display()
                    ))
                });
        }
        let search = search.unwrap_or_default();
        std::env::split_paths(search)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(&self.path))
            .find(|p| is_exe(p).is_ok())
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "criu not found: no executable {} in PATH ({}) (kata-cr-agent --criu)",
                    self.path.display(),
                    search.to_string_lossy()
                ))
            })
    }

    /// Runs criu with `args` and waits for it.
    pub async fn run(&self, args: &[OsString], setup: ChildSetup<'_>) -> Result<Outcome> {
        let exe = self.resolve(std::env::var_os("PATH").as_deref())?;
        let argv = Criu::new(exe).command_line(args, &setup)?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        let ns_fds: Vec<i32> = setup.join.iter().map(|f| f.as_raw_fd()).collect();
        let mut keep: Vec<i32> = setup.keep_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        keep.extend(setup.pidns.map(|fd| fd.as_raw_fd()));
        let procs: Vec<std::ffi::CString> = setup
            .cgroup_procs
            .iter()
            .map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::io("cgroup path", std::io::Error::other(e)))?;
        let fsize = setup.max_file_size;
        let daemon = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec. It only
        // makes system calls (prctl, getppid, setpgid, setrlimit, open,
        // write, close, setns, fcntl), allocates nothing (the paths are
        // prepared above) and borrows descriptors the parent keeps open
        // until the child has exec'd.
        unsafe {
            cmd.pre_exec(move || child_setup(daemon, &procs, &ns_fds, &keep, fsize));
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::FailedPrecondition(format!("criu not found: {}", self.path.display()))
            }
            _ => Error::FailedPrecondition(format!("cannot run criu {}: {e}", self.path.display())),
        })?;
        drop(setup.join);
        let pid = child.id();
        let (mut out_pipe, mut err_pipe) = (child.stdout.take(), child.stderr.take());
        let all = async {
            tokio::join!(
                child.wait(),
                read_all(out_pipe.take()),
                read_all(err_pipe.take())
            )
        };
        tokio::pin!(all);
        let mut timed_out = None;
        let (status, stdout, stderr) = match setup.limit {
            None => all.await,
            Some(limit) => match tokio::time::timeout(limit, &mut all).await {
                Ok(done) => done,
                Err(_) => {
                    tracing::warn!(criu = %self.path.display(), secs = limit.as_secs(), "criu outlived its limit: killing it");
                    timed_out = Some(limit);
                    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        // The child leads its own group (child_setup): this
                        // reaches criu and whatever it started there. It is
                        // not reaped before `all` completes, so the group id
                        // is still ours.
                        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    if let Some(kill_rest) = setup.on_limit {
                        kill_rest();
                    }
                    all.await
                }
            },
        };
        let status = status.map_err(|e| {
            Error::FailedPrecondition(format!("waiting for criu {}: {e}", self.path.display()))
        })?;
        Ok(Outcome {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
        })
    }

    /// `criu --version`.
    pub async fn version(&self) -> Result<String> {
        let out = self
            .run(&["--version".into()], ChildSetup::default())
            .await?;
        parse_version(&out.stdout).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "criu --version printed no version ({}): {}{}",
                out.status, out.stdout, out.stderr
            ))
        })
    }

    /// `criu check`: whether it passed, and what it said.
    pub async fn check(&self) -> Result<(bool, String)> {
        let out = self.run(&["check".into()], ChildSetup::default()).await?;
        let text = format!("{}{}", out.stdout, out.stderr).trim().to_string();
        Ok((out.status.success(), text))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn base() -> DumpArgs {
        DumpArgs {
            pid: 274,
            images_dir: "/proc/self/fd/9".into(),
            work_dir: "/run/kata-cr/work/op".into(),
            log_file: "/run/kata-cr/work/op/dump.log".into(),
            external_pidns: Some(4026532254),
            external_netns: Some(4026532255),
            freeze_cgroup: Some("/sys/fs/cgroup/freezer/default/c1".into()),
            leave_running: true,
            tcp_established: false,
            file_locks: false,
            ext_unix_sk: false,
            bind_mounts: Vec::new(),
        }
    }

    fn joined(a: &DumpArgs) -> String {
        a.args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn dump_args_as_proven_on_the_test_bed() {
        assert_eq!(
            joined(&base()),
            "dump --tree 274 --images-dir /proc/self/fd/9 --work-dir /run/kata-cr/work/op \
             --log-file /run/kata-cr/work/op/dump.log -v4 \
             --external pid[4026532254]:extpid --external net[4026532255]:extnet \
             --external mnt[/]:rootfs --enable-external-masters \
             --link-remap --manage-cgroups=ignore \
             --freeze-cgroup /sys/fs/cgroup/freezer/default/c1 --leave-running"
        );
    }

    #[test]
    fn never_auto_at_dump() {
        assert!(!base().args().iter().any(|x| x == "auto"));
    }

    #[test]
    fn restore_args_mirror_the_dump() {
        let a = RestoreArgs {
            images_dir: "/proc/self/fd/9".into(),
            work_dir: "/run/kata-cr/work/op".into(),
            log_file: "/run/kata-cr/work/op/restore.log".into(),
            pidfile: "/run/kata-cr/work/op/restore.pid".into(),
            root: "/run/c/rootfs".into(),
            pidns_fd: 10,
            netns_fd: Some(11),
            tcp_established: false,
            tcp_close: true,
            file_locks: false,
            ext_unix_sk: false,
            bind_mounts: vec![("/etc/hosts".into(), "/var/lib/cri/sb2/hosts".into())],
            inherit_fds: Vec::new(),
            join_ns: vec![("uts", 12), ("ipc", 13)],
        };
        let s = a
            .args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            s,
            "restore --images-dir /proc/self/fd/9 --work-dir /run/kata-cr/work/op \
             --log-file /run/kata-cr/work/op/restore.log -v4 --restore-detached \
             --pidfile /run/kata-cr/work/op/restore.pid --root /run/c/rootfs \
             --inherit-fd fd[10]:extpid --inherit-fd fd[11]:extnet \
             --join-ns uts:/proc/self/fd/12 --join-ns ipc:/proc/self/fd/13 \
             --ext-mount-map rootfs:/run/c/rootfs \
             --ext-mount-map /etc/hosts:/var/lib/cri/sb2/hosts \
             --manage-cgroups=ignore --tcp-close"
        );
        let no_net = RestoreArgs {
            netns_fd: None,
            tcp_close: false,
            ..a
        }
        .args();
        assert!(!no_net
            .iter()
            .any(|x| x.to_string_lossy().contains("extnet")));
        assert!(!no_net.iter().any(|x| x == "auto"), "never auto");
    }

    #[test]
    fn dump_args_options() {
        let a = DumpArgs {
            external_netns: None,
            freeze_cgroup: None,
            leave_running: false,
            tcp_established: true,
            file_locks: true,
            ext_unix_sk: true,
            ..base()
        };
        let s = joined(&a);
        assert!(!s.contains("net["), "{s}");
        assert!(!s.contains("--freeze-cgroup"), "{s}");
        assert!(!s.contains("--leave-running"), "{s}");
        assert!(
            s.ends_with("--tcp-established --network-lock nftables --file-locks --ext-unix-sk"),
            "{s}"
        );
        // Without connections to lock, criu's default stays.
        let s = joined(&DumpArgs {
            tcp_established: false,
            ..a
        });
        assert!(!s.contains("--network-lock"), "{s}");
    }

    #[test]
    fn version_and_log_helpers() {
        assert_eq!(
            parse_version("Version: 4.2.1\nGitID: v4.2.1\n").as_deref(),
            Some("4.2.1")
        );
        assert_eq!(parse_version("nothing"), None);
        let log =
            "(00.001) ok\n(00.002) Error (criu/util.c:1534): rlimit\n(00.003) Error (x): second\n";
        assert_eq!(
            first_error(log),
            Some("(00.002) Error (criu/util.c:1534): rlimit")
        );
        let log = "(00.001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n\
                   (00.002) Error (criu/action-scripts.c:94): Script x exited with -1\n";
        assert_eq!(
            first_error(log),
            Some("(00.002) Error (criu/action-scripts.c:94): Script x exited with -1")
        );
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn failure_message_quotes_first_error_tail_and_log_path() {
        let outcome = Outcome {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: String::new(),
            stderr: String::new(),
            timed_out: None,
        };
        let log: String = (0..30)
            .map(|i| format!("(00.{i:03}) line {i}\n"))
            .collect::<String>()
            + "(01.000) Error (criu/cr-dump.c:1): Dumping FAILED.\n";
        let msg = failure_message(
            "criu dump",
            &outcome,
            &CriuLog::from_text(&log),
            Path::new("/w/dump.log"),
        );
        assert!(msg.starts_with("criu dump failed (exit status: 1): (01.000) Error (criu/cr-dump.c:1): Dumping FAILED."), "{msg}");
        assert!(
            msg.contains("line 29") && !msg.contains("line 10\n"),
            "{msg}"
        );
        assert!(msg.ends_with("--- full log: /w/dump.log ---"), "{msg}");

        // A usage error: nothing in the log, the reason is on stderr.
        let outcome = Outcome {
            stderr: "criu: unrecognized option '--bogus'\n".into(),
            ..outcome
        };
        let msg = failure_message(
            "criu dump",
            &outcome,
            &CriuLog::default(),
            Path::new("/w/dump.log"),
        );
        assert!(msg.contains("unrecognized option '--bogus'"), "{msg}");
        assert!(msg.contains("criu's stderr"), "{msg}");
    }

    /// The start of a criu 4.2 restore log that failed early (a task could
    /// not open a file), as it reads at -v4: the error lines, then the rest
    /// of the tree going on until criu stops it.
    const RESTORE_LOG_HEAD: &str = "\
(00.000000) Version: 4.2 (gitid 0)
(00.000012) Running on vm Linux 6.12.0 #1 SMP x86_64
(00.000040) Will restore in 4026532254 pid namespace
(00.000102) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self
(00.010000) Inheriting fd 10 extpid
(00.021504)      7: Error (criu/files-reg.c:2199): Can't open file tmp/c on restore: No such file or directory
(00.021510)      7: Error (criu/files-reg.c:2135): Can't open file tmp/c: No such file or directory
(00.021600)      7: Error (criu/files.c:1227): Unable to open fd=1 id=0x7
";

    #[test]
    fn the_summary_is_the_first_error_of_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restore.log");
        // More than LOG_READ_MAX of the other tasks' chatter after the
        // error: the tail holds no error line at all.
        let mut log = RESTORE_LOG_HEAD.to_string();
        let mut i = 0;
        while log.len() < 2 * LOG_READ_MAX as usize {
            log.push_str(&format!(
                "(00.{i:06})      8: Restoring vma {i:x}-{:x} (premapped)\n",
                i + 1
            ));
            i += 1;
        }
        log.push_str("(00.300000) mnt: Switching to new ns to clean ghosts\n");
        std::fs::write(&path, &log).unwrap();
        let read = CriuLog::read(&path);
        assert!(
            first_error(&read.tail).is_none(),
            "the tail alone has no error line"
        );
        let want = "(00.021504)      7: Error (criu/files-reg.c:2199): Can't open file tmp/c on \
                    restore: No such file or directory";
        assert_eq!(read.first_error.as_deref(), Some(want));
        let outcome = Outcome {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: String::new(),
            stderr: String::new(),
            timed_out: None,
        };
        let msg = failure_message("criu restore", &outcome, &read, &path);
        assert_eq!(
            msg.lines().next().unwrap(),
            format!("criu restore failed (exit status: 1): {want}")
        );
        assert!(!msg.contains("no error line"), "{msg}");
        assert!(msg.contains("Switching to new ns to clean ghosts"), "{msg}");
        // The same log read whole says the same.
        assert_eq!(CriuLog::from_text(&log).first_error.as_deref(), Some(want));
    }

    #[test]
    fn error_lines_are_found_whatever_their_shape() {
        // The restorer blob's own lines, and a log with only benign errors.
        let pie = "(00.1) pie: 7: Error (criu/pie/restorer.c:1301): Unable to map vma: -12\n";
        assert_eq!(
            first_error_in(format!("(00.0) ok\n{pie}").as_bytes()).as_deref(),
            Some(pie.trim())
        );
        let benign =
            "(00.0) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n";
        assert_eq!(first_error_in(benign.as_bytes()), None);
        let outcome = Outcome {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: String::new(),
            stderr: String::new(),
            timed_out: None,
        };
        let msg = failure_message(
            "criu restore",
            &outcome,
            &CriuLog::from_text(benign),
            Path::new("/w/r.log"),
        );
        assert!(
            msg.starts_with("criu restore failed (exit status: 1): criu logged no error line"),
            "{msg}"
        );
        // A last line without a newline, an endless one, invalid UTF-8.
        assert_eq!(
            first_error_in(&b"x\n(1.0) Error (a.c:1): end"[..]).as_deref(),
            Some("(1.0) Error (a.c:1): end")
        );
        let mut endless = b"(1.0) Error (a.c:1): ".to_vec();
        endless.extend(std::iter::repeat_n(b'y', 1 << 20));
        assert_eq!(first_error_in(&endless[..]).unwrap().len(), ERROR_LINE_MAX);
        assert_eq!(
            first_error_in(&b"\xff\xfe\n(2.0) Error (b.c:2): \xffbad\n"[..]).as_deref(),
            Some("(2.0) Error (b.c:2): \u{fffd}bad")
        );
        assert_eq!(first_error_in(&b""[..]), None);
    }

    #[tokio::test]
    async fn a_criu_past_its_limit_is_killed_and_said_so() {
        // Whatever the machine's speed, this "criu" never ends by itself:
        // the outcome does not depend on timing.
        let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = called.clone();
        let out = Criu::new("/bin/sh")
            .run(
                &["-c".into(), "exec sleep 100000".into()],
                ChildSetup {
                    limit: Some(std::time::Duration::from_millis(50)),
                    on_limit: Some(Box::new(move || {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst)
                    })),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(out.timed_out, Some(std::time::Duration::from_millis(50)));
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert!(called.load(std::sync::atomic::Ordering::SeqCst));
        let msg = failure_message(
            "criu restore",
            &out,
            &CriuLog::from_text("(9.1) 8: Advanced iov 0 bytes\n"),
            Path::new("/w/r.log"),
        );
        assert!(
            msg.starts_with(
                "criu restore did not finish within 1s and was killed (signal: 9 (SIGKILL))\n"
            ),
            "{msg}"
        );
        assert!(msg.contains("Advanced iov 0 bytes"), "{msg}");
    }

    #[tokio::test]
    async fn the_limit_kills_what_criu_started_too() {
        // A helper holding criu's stdout (as criu's tar does): without the
        // group kill, run() would wait for it for good.
        let t0 = std::time::Instant::now();
        let out = Criu::new("/bin/sh")
            .run(
                &["-c".into(), "sleep 100000 & exec sleep 100000".into()],
                ChildSetup {
                    limit: Some(std::time::Duration::from_millis(100)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(out.timed_out.is_some());
        assert!(t0.elapsed() < std::time::Duration::from_secs(30));
    }

    #[tokio::test]
    async fn no_file_grows_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pages-1.img");
        let script = format!("head -c 100000 /dev/zero > {}", f.display());
        let out = Criu::new("/bin/sh")
            .run(
                &["-c".into(), script.into()],
                ChildSetup {
                    max_file_size: Some(4096),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 4096);
    }

    #[test]
    fn the_child_asks_to_die_with_the_daemon_and_leads_its_group() {
        let me = nix::unistd::getpid();
        // SAFETY: the child only makes system calls (child_setup allocates
        // nothing with empty lists) and leaves with _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = child_setup(me, &[], &[], &[], Some(1 << 20)).is_ok()
                    && nix::sys::prctl::get_pdeathsig() == Ok(Some(Signal::SIGKILL))
                    && nix::unistd::getpgrp() == nix::unistd::getpid()
                    && nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE)
                        == Ok((1 << 20, 1 << 20));
                // SAFETY: ends the forked child at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        // A child whose daemon is already gone does not start criu.
        assert!(child_setup(Pid::from_raw(1), &[], &[], &[], None).is_err());
    }

    #[test]
    fn only_the_end_of_a_huge_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restore.log");
        let line = "(38.104092)      8: Advanced iov 0 bytes, 3->3 iovs, 0 tail\n";
        let n = (LOG_READ_MAX as usize / line.len()) * 3;
        std::fs::write(&path, line.repeat(n) + "last\n").unwrap();
        let tail = read_log_tail(&path);
        assert!(tail.len() as u64 <= LOG_READ_MAX, "{}", tail.len());
        assert!(tail.starts_with("(38.104092)") && tail.ends_with("tail\nlast\n"));
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(read_log_tail(&path), "short\n");
        assert_eq!(read_log_tail(&dir.path().join("none")), "");
    }

    #[tokio::test]
    async fn a_missing_criu_is_a_failed_precondition() {
        let err = Criu::new("/nonexistent/criu").version().await.unwrap_err();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("criu not found: /nonexistent/criu: no such file"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_criu_behind_a_helper_names_criu_not_the_helper() {
        // The dump runs criu through `pidns-exec` (and the guard), which
        // exec it only after the spawn: the error must still name criu's
        // path, not the helper's exec.
        let ns = File::open("/proc/self/ns/pid").unwrap();
        let err = Criu::new("/nonexistent/criu")
            .run(
                &["dump".into()],
                ChildSetup {
                    pidns: Some(std::os::fd::AsFd::as_fd(&ns)),
                    guard: Some(crate::agent::guard::OnLoss {
                        file: "/nonexistent/freezer.state".into(),
                        value: "FROZEN".into(),
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
        assert!(msg.contains("criu not found: /nonexistent/criu"), "{msg}");
        assert!(!msg.contains("pidns-exec"), "{msg}");
    }

    #[test]
    fn criu_is_resolved_before_it_is_run() {
        let dir = tempfile::tempdir().unwrap();
        let (exe, plain) = (dir.path().join("criu"), dir.path().join("plain"));
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Criu::new(&exe).resolve(None).unwrap(), exe);
        let e = Criu::new(dir.path()).resolve(None).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // (root too: access(X_OK) wants an execute bit on a file)
        let e = Criu::new(&plain).resolve(None).unwrap_err().to_string();
        assert!(e.contains("not executable"), "{e}");
        // A bare name: looked up in the PATH given, first match wins;
        // relative PATH entries are skipped.
        let path = std::env::join_paths(["relative", "/nonexistent", dir.path().to_str().unwrap()])
            .unwrap();
        assert_eq!(Criu::new("criu").resolve(Some(&path)).unwrap(), exe);
        let e = Criu::new("criu-nope")
            .resolve(Some(&path))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("criu not found: no executable criu-nope in PATH (relative:/nonexistent:"),
            "{e}"
        );
        assert!(Criu::new("criu").resolve(None).is_err());
    }

    #[tokio::test]
    async fn run_joins_namespaces_and_keeps_the_fd() {
        // `sh` stands in for criu: joining our own uts namespace is
        // allowed for root only; the kept descriptor must be usable.
        let dir = tempfile::tempdir().unwrap();
        let fd = nix::fcntl::open(
            dir.path(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let join = if nix::unistd::geteuid().is_root() {
            vec![File::open("/proc/self/ns/uts").unwrap()]
        } else {
            vec![]
        };
        let sh = Criu::new("/bin/sh");
        let script = format!("echo hi > /proc/self/fd/{}/f && echo done", fd.as_raw_fd());
        let out = sh
            .run(
                &["-c".into(), script.into()],
                ChildSetup {
                    join,
                    keep_fds: vec![std::os::fd::AsFd::as_fd(&fd)],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout.trim(), "done");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "hi\n"
        );
    }
}
