//! Running the criu CLI: version, check, dump; building its arguments and
//! turning its log into error messages.
//!
//! criu runs as a direct child of the daemon and is waited for by pid (the
//! daemon installs no reaper that could take its status). criu dumps only
//! namespaces that differ from its own: a dump runs in the container's pid
//! namespace (no pid namespace image) and dumps its uts and ipc namespaces,
//! as runc's dumps do; a restore joins the container's uts and ipc
//! namespaces, before it execs criu and again through `--join-ns`.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

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
        // runtime of the restoring container; bind mounts from the runtime
        // (hosts, resolv.conf, /dev/.kata-cr-init...) are found and marked
        // external automatically.
        push("--external");
        push(&format!("mnt[/]:{EXT_ROOT_KEY}"));
        for dest in &self.bind_mounts {
            let d = dest.to_string_lossy();
            push("--external");
            push(&format!("mnt[{d}]:{d}"));
        }
        push("--ext-mount-map");
        push("auto");
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
        push("--ext-mount-map");
        push("auto");
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

/// The message of a failed criu run: criu's first error line, the last
/// lines of its log (or its stderr when the log is empty) and where the full
/// log is kept.
pub fn failure_message(what: &str, outcome: &Outcome, log: &str, log_path: &Path) -> String {
    let first = first_error(log)
        .or_else(|| first_error(&outcome.stderr))
        .or_else(|| outcome.stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no error line");
    let mut msg = match outcome.timed_out {
        Some(limit) => format!(
            "{what} did not finish within {}s and was killed ({}){}",
            limit.as_secs(),
            outcome.status,
            first_error(log)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        None => format!("{what} failed ({}): {first}", outcome.status),
    };
    let (body, source) = if log.trim().is_empty() {
        (outcome.stderr.as_str(), "stderr".to_string())
    } else {
        (log, format!("log {}", log_path.display()))
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
    /// How long criu may run: past it the started process is killed, then
    /// [`Self::on_limit`] runs, and the outcome says
    /// [`Outcome::timed_out`]. `None`: no limit.
    pub limit: Option<std::time::Duration>,
    /// Kills whatever else the started process left (see [`OnLimit`]);
    /// everything holding criu's stdout/stderr must be gone after it, or
    /// [`Criu::run`] waits for it.
    pub on_limit: Option<OnLimit<'a>>,
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
        if let Some(fd) = setup.pidns {
            let helper = std::env::current_exe()
                .map_err(|e| Error::io("finding the daemon's executable", e))?;
            argv.push(helper.into());
            argv.push("pidns-exec".into());
            argv.push("--pidns-fd".into());
            argv.push(fd.as_raw_fd().to_string().into());
            argv.push("--".into());
        }
        argv.push(self.path.clone().into());
        argv.extend(args.iter().cloned());
        Ok(argv)
    }

    /// Runs criu with `args` and waits for it.
    pub async fn run(&self, args: &[OsString], setup: ChildSetup<'_>) -> Result<Outcome> {
        let argv = self.command_line(args, &setup)?;
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
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (setns, fcntl, open, write).
        unsafe {
            cmd.pre_exec(move || {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &ns_fds {
                    if libc::setns(fd, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &keep {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
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
                    if let Some(pid) = pid {
                        // SAFETY: plain syscall; the child is not reaped
                        // before `all` completes, so the pid is still ours.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
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
             --external mnt[/]:rootfs --ext-mount-map auto --enable-external-masters \
             --link-remap --manage-cgroups=ignore \
             --freeze-cgroup /sys/fs/cgroup/freezer/default/c1 --leave-running"
        );
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
             --ext-mount-map /etc/hosts:/var/lib/cri/sb2/hosts --ext-mount-map auto \
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
            s.ends_with("--tcp-established --file-locks --ext-unix-sk"),
            "{s}"
        );
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
        let msg = failure_message("criu dump", &outcome, &log, Path::new("/w/dump.log"));
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
        let msg = failure_message("criu dump", &outcome, "", Path::new("/w/dump.log"));
        assert!(msg.contains("unrecognized option '--bogus'"), "{msg}");
        assert!(msg.contains("criu's stderr"), "{msg}");
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
            "(9.1) 8: Advanced iov 0 bytes\n",
            Path::new("/w/r.log"),
        );
        assert!(
            msg.starts_with(
                "criu restore did not finish within 0s and was killed (signal: 9 (SIGKILL))\n"
            ),
            "{msg}"
        );
        assert!(msg.contains("Advanced iov 0 bytes"), "{msg}");
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
