//! `Restore`: bring a workload dumped by [`super::checkpoint`] back, from
//! images staged in `<rootfs>/<image_dir>/` (see [`super::images`]), as the
//! child of a container's init waiting in restore mode (`kata-cr-init
//! --restore`).
//!
//! The image set is untrusted (an archive, a registry): before criu sees
//! it, its files are held to the size caps ([`super::limits`]) and what it
//! asks for ([`super::image_claims`]) to what the container was granted
//! ([`super::grants`], judged by [`super::restore_checks`]): external
//! mounts only by kata-cr's keys, mapped to this container's sources, no
//! host sources, no wider credentials or namespaces. A refusal is an
//! `InvalidArgument` that names what was wrong.
//!
//! criu runs as a process of the container's pid namespace (through
//! [`super::pidns`]: high pid, own `/proc`), in the container's cgroups and
//! uts/ipc namespaces, with `--restore-detached`: when it exits the
//! restored root (same pid as at dump) is reparented to the container's
//! init, which can `waitpid` it. The pid namespace, and the network
//! namespace when it is not the daemon's, are handed to criu as the
//! external namespaces the dump recorded; the root mount maps to the new
//! rootfs. The daemon then checks the root is the init's child, tells the
//! init with [`RESTORE_SIGNAL`] (value: the pid), and waits for the init to
//! join the workload's mount namespace.
//!
//! criu restore gets a time limit ([`criu_limit`]: the daemon's
//! `--restore-timeout`, shorter than the caller's RPC deadline): a criu that
//! never ends (criu 4.2 spins forever in its restorer when a `pages-*.img`
//! is shorter than its pagemap says) is killed with everything it started
//! in the container's pid namespace, and the restore fails with the end of
//! criu's log instead of hanging until the caller gives up.
//!
//! On any failure after the init was found: the init's children are killed,
//! the init is told the restore failed (it exits 125; SIGKILL if it does
//! not within [`INIT_EXIT_WAIT`]), and the staged images are removed. On
//! success the images are removed too (the restored container must not
//! carry a copy of its memory in its rootfs).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cgroup;
use super::container;
use super::criu::{self, ChildSetup, RestoreArgs};
use super::error::{Error, Result};
use super::grants;
use super::image_claims;
use super::images::{self, DirSource, ImageDir};
use super::limits;
use super::readonly_root;
use super::restore_checks;
use super::rootfs_diff;
use super::spec;
use super::tcp;
use super::Daemon;
use crate::api::{RestoreRequest, RestoreResponse};
use crate::init::RESTORE_SIGNAL;

/// Name of criu's log in the operation's work directory.
pub const LOG_NAME: &str = "restore.log";
/// Name of criu's pidfile in the operation's work directory.
pub const PIDFILE_NAME: &str = "restore.pid";
/// How long the init may take to block signals after it started.
pub const INIT_READY_WAIT: Duration = Duration::from_secs(5);
/// How long the init may take to adopt the workload once told.
pub const ADOPT_WAIT: Duration = Duration::from_secs(5);
/// How long a told-to-fail init may take to exit before it is killed.
pub const INIT_EXIT_WAIT: Duration = Duration::from_secs(2);
/// Default limit of a criu restore (`kata-cr-agent --restore-timeout`).
pub const DEFAULT_CRIU_LIMIT: Duration = Duration::from_secs(120);
/// Time kept from the caller's deadline to undo a restore whose criu was
/// killed and to answer.
pub const UNDO_MARGIN: Duration = Duration::from_secs(10);

/// How long criu restore may run: the configured limit, but never past the
/// caller's deadline (`rpc`, when it sent one) less [`UNDO_MARGIN`] (or
/// half of it, for a short deadline), so that the caller gets criu's error
/// rather than its own timeout.
pub fn criu_limit(configured: Duration, rpc: Option<Duration>) -> Duration {
    match rpc {
        Some(t) if !t.is_zero() => configured.min(t.saturating_sub(UNDO_MARGIN).max(t / 2)),
        _ => configured,
    }
}

/// SIGKILLs every live process of `init`'s pid namespace but the init
/// (criu and the tasks it was restoring: the container owns its pid
/// namespace, nothing else runs there while the init waits to restore).
/// Returns the pids killed.
fn kill_pidns_members(proc: &Path, init: i32) -> Vec<i32> {
    let mut killed = Vec::new();
    // A process may fork while the namespace is swept: sweep again until
    // a pass finds nobody (a killed process cannot fork any more).
    for _ in 0..16 {
        let live: Vec<i32> = container::pidns_members(proc, init)
            .into_iter()
            .filter(|&p| container::is_alive(proc, p) && !killed.contains(&p))
            .collect();
        if live.is_empty() {
            break;
        }
        for &p in &live {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        killed.extend(live);
    }
    killed
}

/// Whether a failed restore is one the proxy asks again for rather than a
/// failure: no kata-cr-init waits at the rootfs yet (the inner shim's Start
/// can return before the container's process has exec'd it), found before
/// anything was touched. The proxy gives up after a few seconds and reports
/// it then; every failure after the init was found is logged by [`fail`].
pub fn caller_asks_again(e: &Error) -> bool {
    matches!(e, Error::NotFound(m) if m.starts_with(container::NO_INIT))
}

/// Checks the request fields that need no system access.
pub fn validate(req: &RestoreRequest) -> Result<()> {
    if req.container_id.is_empty() {
        return Err(Error::InvalidArgument("container_id is empty".into()));
    }
    if !Path::new(&req.rootfs).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {:?} is not an absolute path",
            req.rootfs
        )));
    }
    images::validate_dir_name(&req.image_dir)
}

/// Whether a `/proc/<pid>/status` shows `sig` blocked (`SigBlk`).
pub fn blocks(status: &str, sig: i32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// `sigqueue(pid, RESTORE_SIGNAL, value)`.
fn notify(pid: i32, value: i32) -> std::io::Result<()> {
    let sigval = libc::sigval {
        sival_ptr: value as isize as *mut libc::c_void,
    };
    // SAFETY: sigqueue only reads its arguments; nix has no wrapper for
    // queuing a real-time signal with a value.
    if unsafe { libc::sigqueue(pid, RESTORE_SIGNAL, sigval) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Performs a restore (see the module documentation).
/// `rpc_timeout`: the caller's deadline, if it sent one.
pub async fn restore(
    daemon: &Daemon,
    req: RestoreRequest,
    rpc_timeout: Option<Duration>,
) -> Result<RestoreResponse> {
    let started = Instant::now();
    validate(&req)?;
    let rootfs = PathBuf::from(&req.rootfs);
    let _busy = daemon.busy.enter(&req.container_id, &rootfs, "restore")?;
    let proc = daemon.proc_root.as_path();
    let init = container::find_restoring(proc, &rootfs)?;
    tracing::info!(id = %req.container_id, init, "restore: found the waiting init");

    // Nothing is touched before this point; from here on a failure ends
    // the init too.
    // The restored tree's root is reparented to the init of the pid
    // namespace: that must be kata-cr-init (a checkpoint of such a
    // container is refused already; an image set made elsewhere is not).
    if let Some(why) = container::shared_pidns(proc, init, &req.container_id) {
        return Err(fail(proc, init, None, Error::FailedPrecondition(why)).await);
    }
    // A read-only root must come back read-only: refused before criu runs
    // when the criu at hand would not keep it so.
    if let Err(e) = keep_read_only_root(daemon, init, &req.container_id).await {
        return Err(fail(proc, init, None, e).await);
    }
    let images = match ImageDir::open(&rootfs, &req.image_dir) {
        Ok(i) => i,
        Err(e) => return Err(fail(proc, init, None, e).await),
    };
    // CRI's rootfs diff that containerd could not put into this rootfs:
    // in place before criu opens the workload's files.
    if let Err(e) = apply_rootfs_diff(daemon, &req, &rootfs, &images) {
        return Err(fail(proc, init, Some(images), e).await);
    }
    let limit = criu_limit(daemon.restore_limit, rpc_timeout);
    match run(daemon, &req, &rootfs, init, &images, started, limit).await {
        Ok(resp) => {
            if let Err(e) = images.remove() {
                tracing::warn!(id = %req.container_id, error = %e, "restore: cannot remove the staged images");
            }
            Ok(resp)
        }
        Err(e) => Err(fail(proc, init, Some(images), e).await),
    }
}

/// Applies the image set's `req.rootfs_diff` (see [`rootfs_diff`]) to the
/// rootfs; the file goes with the image set (criu ignores it).
fn apply_rootfs_diff(
    daemon: &Daemon,
    req: &RestoreRequest,
    rootfs: &Path,
    images: &ImageDir,
) -> Result<()> {
    if req.rootfs_diff.is_empty() {
        return Ok(());
    }
    if req.rootfs_diff != rootfs_diff::FILE_NAME {
        return Err(Error::InvalidArgument(format!(
            "rootfs_diff {:?}: the staged rootfs diff is named {:?}",
            req.rootfs_diff,
            rootfs_diff::FILE_NAME
        )));
    }
    let what = images.path().join(&req.rootfs_diff).display().to_string();
    let Some((file, size)) = images.open_file(&req.rootfs_diff)? else {
        return Err(Error::InvalidArgument(format!(
            "{what} is not in the staged image set"
        )));
    };
    daemon.limits.check_file(&what, &req.rootfs_diff, size)?;
    let t0 = Instant::now();
    let applied = rootfs_diff::apply(rootfs, std::io::BufReader::new(file), &daemon.limits, &what)?;
    tracing::info!(id = %req.container_id, entries = applied.entries, bytes = applied.bytes,
        removals = applied.removals, ms = t0.elapsed().as_millis() as u64,
        "restore: rootfs diff applied");
    Ok(())
}

/// See [`readonly_root`]: criu's version is asked only for a read-only root.
async fn keep_read_only_root(daemon: &Daemon, init: i32, id: &str) -> Result<()> {
    if !readonly_root::init_root_is_read_only(&daemon.proc_root, init)? {
        return Ok(());
    }
    let version = daemon.criu.version().await?;
    readonly_root::refuse_unless_criu_keeps_it(id, &version)
}

async fn run(
    daemon: &Daemon,
    req: &RestoreRequest,
    rootfs: &Path,
    init: i32,
    images: &ImageDir,
    started: Instant,
    limit: Duration,
) -> Result<RestoreResponse> {
    let proc = daemon.proc_root.as_path();
    wait_until(INIT_READY_WAIT, || {
        let status = std::fs::read_to_string(proc.join(init.to_string()).join("status"));
        Ok(status.is_ok_and(|s| blocks(&s, RESTORE_SIGNAL)))
    })
    .await
    .map_err(|()| {
        Error::FailedPrecondition(format!(
            "the init {init} does not block signal {RESTORE_SIGNAL}: not a kata-cr-init waiting to restore"
        ))
    })?;

    let op = daemon.work.begin("restore", &req.container_id)?;
    let op_dir = op.dir().to_path_buf();
    let log_path = op_dir.join(LOG_NAME);
    let pidfile = op_dir.join(PIDFILE_NAME);
    let init_s = init.to_string();
    let open_ns = |kind: &str| -> Result<File> {
        let path = container::ns_path(proc, &init_s, kind);
        File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))
    };
    let differs = |kind: &str| -> Result<bool> {
        Ok(container::ns_inode(proc, &init_s, kind)? != container::ns_inode(proc, "self", kind)?)
    };
    let pidns = open_ns("pid")?;
    let netns = if differs("net")? {
        Some(open_ns("net")?)
    } else {
        None
    };
    let mut join = Vec::new();
    let mut join_ns = Vec::new();
    for kind in ["uts", "ipc"] {
        if differs(kind)? {
            join.push(open_ns(kind)?);
            join_ns.push((kind, open_ns(kind)?));
        }
    }
    let source = DirSource(images);
    let listing = images.listing()?;
    daemon.limits.check_set(
        &images.path().display().to_string(),
        listing.iter().map(|(n, sz)| (n.as_str(), *sz)),
    )?;
    // The external mounts this container can give criu: its spec's bind
    // mounts and its cgroup mounts, each keyed by its mount point.
    let external: BTreeMap<String, PathBuf> = spec::bind_mounts(rootfs)
        .into_iter()
        .map(|m| (m.destination, m.source))
        .chain(spec::cgroup_maps(proc, init))
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
        .collect();
    let grants = grants::read(proc, init, rootfs, netns.is_some(), external)?;
    tracing::info!(
        id = %req.container_id,
        caps = format!("{:x}", grants.caps),
        mounts = ?grants.mounts.iter().map(|m| m.mountpoint.as_str()).collect::<Vec<_>>(),
        external = ?grants.external.keys().collect::<Vec<_>>(),
        "restore: what the container was granted"
    );
    let claims = image_claims::read(&source, &daemon.limits)?;
    restore_checks::check(&images.path().display().to_string(), &claims, &grants)?;

    let conns = tcp::connections(&source, &daemon.limits)?;
    let missing = if req.tcp_established && !req.tcp_close {
        tcp::unbindable(netns.as_ref(), &conns)?
    } else {
        Vec::new()
    };
    let tcp_plan = tcp::plan(&conns, &missing, req.tcp_established, req.tcp_close);
    if tcp_plan.close && !conns.is_empty() {
        tracing::warn!(id = %req.container_id, connections = conns.len(), missing = ?missing,
            "restore: TCP connections come back closed (their local addresses are not in the container's network)");
    }
    let cgroup_procs = cgroup::procs_files_of(proc, init)?;
    // The dumped stdio pipes led to the old runtime: give criu the new
    // container's stdio, the init's, in their place.
    let descriptors = read_capped(images, spec::DESCRIPTORS, limits::MAX_DESCRIPTORS)?;
    let mut stdio = Vec::new();
    for (fd, key) in spec::inheritable_stdio(&descriptors) {
        let path = proc.join(init.to_string()).join("fd").join(fd.to_string());
        let mode = if fd == 0 {
            OFlag::O_RDONLY
        } else {
            OFlag::O_WRONLY
        };
        let f = nix::fcntl::open(
            &path,
            mode | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        stdio.push((f, key));
    }

    let args = RestoreArgs {
        images_dir: images::proc_fd_path(images.fd()),
        work_dir: op_dir.clone(),
        log_file: log_path.clone(),
        pidfile: pidfile.clone(),
        root: rootfs.to_path_buf(),
        pidns_fd: pidns.as_raw_fd(),
        netns_fd: netns.as_ref().map(|f| f.as_raw_fd()),
        tcp_established: tcp_plan.established,
        tcp_close: tcp_plan.close,
        file_locks: req.file_locks,
        ext_unix_sk: req.ext_unix_sk,
        bind_mounts: grants
            .external
            .iter()
            .filter(|(k, _)| k.as_str() != criu::EXT_ROOT_KEY)
            .map(|(k, v)| (PathBuf::from(k), v.clone()))
            .collect(),
        inherit_fds: stdio
            .iter()
            .map(|(f, k)| (f.as_raw_fd(), k.clone()))
            .collect(),
        join_ns: join_ns.iter().map(|(k, f)| (*k, f.as_raw_fd())).collect(),
    }
    .args();
    let mut keep_fds = vec![images.fd()];
    keep_fds.extend(stdio.iter().map(|(f, _)| f.as_fd()));
    keep_fds.extend(netns.as_ref().map(|f| f.as_fd()));
    keep_fds.extend(join_ns.iter().map(|(_, f)| f.as_fd()));
    let sweep_proc = proc.to_path_buf();
    let id = req.container_id.clone();
    let setup = ChildSetup {
        join,
        keep_fds,
        cgroup_procs,
        pidns: Some(pidns.as_fd()),
        pid_floor: claims.threads.iter().map(|t| t.pid.max(t.tid)).max(),
        limit: Some(limit),
        on_limit: Some(Box::new(move || {
            let killed = kill_pidns_members(&sweep_proc, init);
            tracing::warn!(%id, ?killed, "restore: criu outlived its limit; killed it and what it started in the container");
        })),
        // criu restore writes no image; the restored tasks' own limits come
        // from the images.
        max_file_size: None,
        guard: None,
    };
    let shown: Vec<String> = daemon
        .criu
        .command_line(&args, &setup)?
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = shown.join(" ");
    tracing::info!(id = %req.container_id, %command, limit_s = limit.as_secs(), "restore: running criu");
    let _ = std::fs::write(op_dir.join("command"), format!("{command}\n"));

    let outcome = daemon.criu.run(&args, setup).await?;
    if !outcome.stderr.trim().is_empty() {
        let _ = std::fs::write(op_dir.join("criu.stderr"), &outcome.stderr);
    }
    if !outcome.status.success() || outcome.timed_out.is_some() {
        let log = criu::CriuLog::read(&log_path);
        return Err(Error::FailedPrecondition(criu::failure_message(
            "criu restore",
            &outcome,
            &log,
            &log_path,
        )));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "criu restore succeeded but wrote no pid to {}",
                pidfile.display()
            ))
        })?;
    let host_pid = container::children(proc, init)?
        .into_iter()
        .find(|&c| container::ns_pid(proc, c) == Some(pid))
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the restored workload (pid {pid} in the container) is not a child of the init {init}"
            ))
        })?;
    notify(init, pid).map_err(|e| Error::io(format!("notifying the init {init}"), e))?;
    let mnt = |p: i32| container::ns_inode(proc, &p.to_string(), "mnt");
    wait_until(ADOPT_WAIT, || {
        if !container::is_alive(proc, init) {
            return Err(());
        }
        Ok(mnt(init).ok().is_some() && mnt(init).ok() == mnt(host_pid).ok())
    })
    .await
    .map_err(|()| {
        Error::FailedPrecondition(format!(
            "the init {init} did not adopt the restored workload {host_pid} (it {}; its stderr, \
             the container's output, says why)",
            if container::is_alive(proc, init) {
                "did not join its mount namespace"
            } else {
                "exited"
            }
        ))
    })?;

    let mut resp = RestoreResponse::new();
    resp.pid = pid;
    resp.host_pid = host_pid;
    resp.criu_log_path = log_path.to_string_lossy().into_owned();
    resp.duration_ms = started.elapsed().as_millis() as u64;
    if tcp_plan.close {
        resp.tcp_closed = conns.len() as u32;
        resp.tcp_missing_addresses = missing.iter().map(ToString::to_string).collect();
    }
    tracing::info!(id = %req.container_id, pid, host_pid, ms = resp.duration_ms, tcp = conns.len(), tcp_closed = resp.tcp_closed, "restore done");
    Ok(resp)
}

/// Reads the file `name` of the set (at most `max` bytes: a larger one is
/// refused); empty when it is missing.
fn read_capped(images: &ImageDir, name: &str, max: u64) -> Result<Vec<u8>> {
    let Some((f, size)) = images.open_file(name)? else {
        return Ok(Vec::new());
    };
    if size > max {
        return Err(Error::InvalidArgument(format!(
            "{}/{name} is {}, more than the {} kata-cr reads of it",
            images.path().display(),
            limits::show(size),
            limits::show(max)
        )));
    }
    let mut data = Vec::new();
    f.take(max)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(format!("read {}/{name}", images.path().display()), e))?;
    Ok(data)
}

/// Polls `check` until it says true (Ok), gives up (Err) or `limit` passes
/// (Err). What it waits for (the init blocking a signal, joining a
/// namespace) usually takes well under a millisecond: the first polls come
/// 1 ms apart, doubling up to [`POLL_MAX`], so that a restore does not sit
/// out a whole fixed interval each time (twice per restore).
async fn wait_until(
    limit: Duration,
    mut check: impl FnMut() -> std::result::Result<bool, ()>,
) -> std::result::Result<(), ()> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// The longest pause between two polls of [`wait_until`].
const POLL_MAX: Duration = Duration::from_millis(10);

/// Undoes a failed restore: kills what criu left under the init, makes the
/// init exit, removes the images; returns `err` with a note on what was
/// done.
async fn fail(proc: &Path, init: i32, images: Option<ImageDir>, err: Error) -> Error {
    let mut notes = Vec::new();
    match container::children(proc, init) {
        Ok(kids) if !kids.is_empty() => {
            for &k in &kids {
                let _ = kill(Pid::from_raw(k), Signal::SIGKILL);
            }
            notes.push(format!("killed the init's children {kids:?}"));
        }
        _ => {}
    }
    let told = notify(init, 0).is_ok();
    let exited = wait_until(INIT_EXIT_WAIT, || Ok(!container::is_alive(proc, init)))
        .await
        .is_ok();
    if exited {
        notes.push(format!(
            "the init {init} exited{}",
            if told {
                " (told the restore failed)"
            } else {
                ""
            }
        ));
    } else {
        // From outside its pid namespace SIGKILL reaches a namespace's init.
        let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
        notes.push(format!("killed the init {init}"));
    }
    if let Some(images) = images {
        let path = images.path().display().to_string();
        match images.remove() {
            Ok(()) => notes.push(format!("removed {path}")),
            Err(e) => notes.push(format!("could not remove the images: {e}")),
        }
    }
    let note = notes.join("; ");
    tracing::warn!(init, error = %err, %note, "restore failed");
    match err {
        Error::FailedPrecondition(m) => Error::FailedPrecondition(format!("{m}\n{note}")),
        Error::NotFound(m) => Error::NotFound(format!("{m}; {note}")),
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{m}; {note}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_gets_less_time_than_the_caller_waits() {
        let s = Duration::from_secs;
        // The proxy's default RPC timeout (300 s): the configured limit.
        assert_eq!(criu_limit(s(120), Some(s(300))), s(120));
        // No deadline sent: the configured limit.
        assert_eq!(criu_limit(s(120), None), s(120));
        assert_eq!(criu_limit(s(120), Some(Duration::ZERO)), s(120));
        // A shorter deadline: time is kept to undo and answer.
        assert_eq!(criu_limit(s(120), Some(s(60))), s(50));
        assert_eq!(criu_limit(s(120), Some(s(12))), s(6));
    }

    #[test]
    fn requests_are_checked_before_anything_happens() {
        let mut req = RestoreRequest::new();
        req.container_id = "c1".into();
        req.rootfs = "/r".into();
        req.image_dir = "img".into();
        validate(&req).unwrap();
        for bad in [
            RestoreRequest {
                container_id: String::new(),
                ..req.clone()
            },
            RestoreRequest {
                rootfs: "r".into(),
                ..req.clone()
            },
            RestoreRequest {
                image_dir: "../x".into(),
                ..req.clone()
            },
        ] {
            assert!(matches!(validate(&bad), Err(Error::InvalidArgument(_))));
        }
    }

    #[test]
    fn only_a_missing_init_is_asked_again() {
        let proc = tempfile::tempdir().unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        let missing = container::find_restoring(proc.path(), rootfs.path()).unwrap_err();
        assert!(caller_asks_again(&missing), "{missing}");
        // A NotFound after the init was found carries fail()'s note: logged.
        assert!(!caller_asks_again(&Error::NotFound(
            "the workload is gone; killed the init 7".into()
        )));
        assert!(!caller_asks_again(&Error::FailedPrecondition(
            container::NO_INIT.into()
        )));
    }

    #[test]
    fn blocked_signal_from_status() {
        let status = "Name:\tkata-cr-init\nSigBlk:\tfffffffffffbfeff\n";
        assert!(blocks(status, RESTORE_SIGNAL));
        assert!(!blocks("SigBlk:\t0000000000000000\n", RESTORE_SIGNAL));
        assert!(!blocks("garbage", RESTORE_SIGNAL));
    }
}
